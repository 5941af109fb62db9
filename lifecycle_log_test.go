package taskhost_test

import (
	"context"
	"flag"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/redistest"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/lifecycle_log.golden")

// lifecycleGolden holds the worker's log of a start, an outage and a stop.
const lifecycleGolden = "testdata/lifecycle_log.golden"

// normalise replaces what changes from run to run.
var normalise = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`^time=\S+ `), ""},
	{regexp.MustCompile(`(127\.0\.0\.1|localhost):\d+`), "$1:PORT"},
	{regexp.MustCompile(`\b(outage|failing_for|took)=[0-9.]+[a-zµ]+`), "$1=DURATION"},
	{regexp.MustCompile(`\b(previous_run_id|run_id)=[0-9a-f]+`), "$1=RUNID"},
	{regexp.MustCompile(`\basynq_errors=\d+`), "asynq_errors=N"},
	{regexp.MustCompile(`\breason="[^"]*"`), `reason="REASON"`},
}

// lifecycleLines returns the normalised lines of one phase, sorted: lines
// from concurrent components may come in either order. The wake-up
// source's lines are left out; its own tests cover them.
func lifecycleLines(log string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		if l == "" || strings.Contains(l, `msg="wake-ups:`) {
			continue
		}
		for _, n := range normalise {
			l = n.re.ReplaceAllString(l, n.with)
		}
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}

// TestLifecycleLogGolden: the whole log of a worker's start, a Redis outage
// of about 3 s and a stop, at the default level (info), is a few lines: one
// per lifecycle event for the whole worker, not one per fetcher; one when
// the outage starts and one when it ends, with its duration and asynq's
// repeats folded into a count; nothing that did not happen. Run with
// -update to rewrite the golden file after a deliberate change.
func TestLifecycleLogGolden(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	cfg := webhookConfig(t, s.Addr())
	cfg.Log.Level = "info"
	var log wkLog
	rt, err := taskhost.New(cfg, taskhost.Options{Logger: taskhost.NewLogger(cfg.Log, &log), Version: "test"})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = rt.Stop(context.Background())
		}
	})
	waitState(t, rt, 5*time.Second, "ready")
	waitLog(t, &log, 0, `msg="redis ready"`)
	require.Eventually(t, func() bool { return rt.Limits().Backend() == "redis" }, 5*time.Second, 10*time.Millisecond,
		"the fallbacks follow the monitor")
	start := log.String()

	s.Kill()
	waitState(t, rt, 5*time.Second, "down")
	time.Sleep(2 * time.Second) // the outage lasts: asynq fails and retries meanwhile
	s.MustRestart(t)
	waitState(t, rt, 10*time.Second, "ready")
	waitLog(t, &log, len(start), `msg="redis ready"`)
	outage := log.String()[len(start):]
	require.Regexp(t, `asynq_errors=[1-9]`, outage, "asynq's repeats were folded, and counted")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, rt.Stop(ctx))
	stopped = true
	stop := log.String()[len(start)+len(outage):]

	var got strings.Builder
	for _, phase := range []struct{ name, log string }{{"start", start}, {"outage", outage}, {"stop", stop}} {
		got.WriteString("# " + phase.name + "\n")
		for _, l := range lifecycleLines(phase.log) {
			got.WriteString(l + "\n")
		}
	}
	if *updateGolden {
		require.NoError(t, os.WriteFile(lifecycleGolden, []byte(got.String()), 0o644))
	}
	want, err := os.ReadFile(lifecycleGolden)
	require.NoError(t, err)
	require.Equal(t, string(want), got.String(), "the whole log:\n%s", log.String())
}

// waitLog waits for pattern in the log after offset.
func waitLog(t *testing.T, log *wkLog, offset int, pattern string) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(log.String()[offset:], pattern) },
		10*time.Second, 10*time.Millisecond, "no %s in:\n%s", pattern, log.String())
}
