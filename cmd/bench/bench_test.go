package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain lets the harness re-execute this test binary as a child worker.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == childFlag || os.Args[1] == workerFlag) {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"),
	)
}

// runQuick runs the harness in -quick mode with tiny figures and returns
// its JSON report and its table.
func runQuick(t *testing.T, extra ...string) (*Report, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bench.json")
	args := append([]string{"-quick", "-n", "500", "-rounds", "1", "-concurrency", "10",
		"-latency-duration", "2s", "-idle-duration", "1s", "-down-duration", "1s",
		"-json", path}, extra...)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	code := run(ctx, args, strings.NewReader(""), &stdout, &stderr)
	require.Equal(t, 0, code, "bench failed:\n%s", stderr.String())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var rep Report
	require.NoError(t, json.Unmarshal(b, &rep))
	return &rep, stdout.String()
}

func TestQuickRunReportsEveryFigureForBothSides(t *testing.T) {
	start := time.Now()
	rep, table := runQuick(t)
	t.Logf("quick run took %s", time.Since(start).Round(time.Millisecond))

	// Every figure of the issue is there, for both sides, from one round.
	positive := []string{
		"drain_c10_tasks_per_s", "drain_c10_commands_per_task", "drain_c10_scripts_per_task",
		"drain_c10_peak_rss_mb", "latency_p50_ms", "latency_p99_ms", "latency_rate_per_s",
		"sparse_p50_ms", "sparse_p99_ms", "drain_c10_log_bytes_per_task",
		"idle_commands_per_s", "idle_rss_mb",
		"enqueue_direct", "enqueue_outbox_memory", "enqueue_outbox_file",
		"outbox_replay_memory", "outbox_replay_file",
	}
	nonNegative := []string{"drain_c10_cpu_s_per_1k", "drain_c10_redis_cpu_s_per_1k", "idle_cpu_pct", "down_cpu_pct", "down_cpu_first_s_pct"}
	for _, key := range append(positive, nonNegative...) {
		row := rep.row(key)
		require.NotNil(t, row, "figure %s missing", key)
		for side, s := range map[string]*Stat{sideBare: row.Bare, sideTaskhost: row.Taskhost} {
			require.NotNil(t, s, "%s: no %s figure", key, side)
			require.Len(t, s.Values, 1, "%s %s: one value per round", key, side)
			require.False(t, math.IsNaN(s.Median) || math.IsInf(s.Median, 0), "%s %s: %v", key, side, s.Median)
			require.GreaterOrEqual(t, s.Median, 0.0, "%s %s", key, side)
			require.LessOrEqual(t, s.Min, s.Median)
			require.GreaterOrEqual(t, s.Max, s.Median)
		}
		require.Contains(t, table, row.Label)
	}
	for _, key := range positive {
		row := rep.row(key)
		require.Greater(t, row.Bare.Median, 0.0, "%s bare", key)
		require.Greater(t, row.Taskhost.Median, 0.0, "%s taskhost", key)
		require.NotNil(t, row.Ratio, "%s: ratio", key)
	}

	// Scrapes exist only on taskhost; each reads the queue from Redis.
	for _, key := range []string{"scrape_metrics_commands", "scrape_healthz_commands"} {
		row := rep.row(key)
		require.NotNil(t, row, "figure %s missing", key)
		require.Nil(t, row.Bare)
		require.NotNil(t, row.Taskhost)
		require.Greater(t, row.Taskhost.Median, 0.0, key)
	}
	for _, key := range []string{"lifecycle_commands", "lifecycle_s", "drain_c10_lifetime_s"} {
		row := rep.row(key)
		require.NotNil(t, row, "figure %s missing", key)
		require.Greater(t, row.Bare.Median, 0.0, key)
		require.Greater(t, row.Taskhost.Median, 0.0, key)
	}

	// Sane magnitudes: every task costs bare asynq its dequeue and done
	// scripts, and taskhost its done script and a share of a batched
	// dequeue; a worker is more than a few MB and far less than a GB.
	require.GreaterOrEqual(t, rep.row("drain_c10_scripts_per_task").Bare.Median, 2.0)
	require.GreaterOrEqual(t, rep.row("drain_c10_scripts_per_task").Taskhost.Median, 1.0)
	for _, s := range []*Stat{rep.row("idle_rss_mb").Bare, rep.row("idle_rss_mb").Taskhost} {
		require.Greater(t, s.Median, 4.0)
		require.Less(t, s.Median, 1024.0)
	}
	// The stream ran at about the asked rate.
	require.InDelta(t, 1000, rep.row("latency_rate_per_s").Taskhost.Median, 200)

	// The targets are judged, and the breakdowns and machine are recorded.
	require.NotEmpty(t, rep.Targets)
	require.NotEmpty(t, rep.Commands[sideBare]["idle, calls per second"])
	require.NotEmpty(t, rep.Commands[sideTaskhost]["drain c=10, calls per task"])
	require.Positive(t, rep.Machine.NProc)
	require.NotEqual(t, "unknown", rep.Machine.RedisVersion)
	require.Contains(t, table, "targets:")
}

func TestFlagsRejectBadInput(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-n", "0"},
		{"-concurrency", "10,x"},
		{"-phases", "drain,nope"},
		{"-latency-rate", "0"},
		{"-sparse-gap", "5s-1s"},
		{"-sparse-gap", "1s"},
		{"-taskhost", "docker"},
		{"-variants", "bare=X=1"},
		{"-variants", "a=NOEQUALS"},
		{"extra"},
	} {
		var stderr bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(""), &bytes.Buffer{}, &stderr)
		require.Equal(t, 2, code, "args %v: %s", args, stderr.String())
	}
}

func TestQuickDefaultsYieldToExplicitFlags(t *testing.T) {
	t.Parallel()
	o, err := parseFlags([]string{"-quick", "-n", "700"}, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, 700, o.n)
	require.Equal(t, 1, o.rounds)
	require.Equal(t, 3*time.Second, o.latencyDuration)
	require.Equal(t, []int{10, 50, 200}, o.concurrency)
}

func TestPercentileIsNearestRank(t *testing.T) {
	t.Parallel()
	s := make([]int64, 100)
	for i := range s {
		s[i] = int64(i + 1)
	}
	require.Equal(t, int64(50), percentile(s, 0.50))
	require.Equal(t, int64(99), percentile(s, 0.99))
	require.Equal(t, int64(7), percentile([]int64{7}, 0.99))
}

func TestProcReadsThisProcess(t *testing.T) {
	t.Parallel()
	rss, hwm, err := procMem(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, rss)
	require.GreaterOrEqual(t, hwm, rss)
	_, err = procCPU(os.Getpid())
	require.NoError(t, err)
}

func TestParseVariants(t *testing.T) {
	t.Parallel()
	vs, err := parseVariants("default=; f6=WORKER_FETCHERS=6 GOGC=200 ;")
	require.NoError(t, err)
	require.Equal(t, []variant{{name: "default"}, {name: "f6", env: []string{"WORKER_FETCHERS=6", "GOGC=200"}}}, vs)
	for _, bad := range []string{"", ";", "a=X=1;a=Y=2", "=X=1", "bare=", "a=X"} {
		_, err := parseVariants(bad)
		require.Error(t, err, bad)
	}
}

// The worker command's config file sets only what the harness must.
func TestBinaryConfigIsDefaultsPlusHarnessKeys(t *testing.T) {
	t.Parallel()
	cfg := binaryConfig(childSpec{side: sideTaskhost, redisURL: "redis://127.0.0.1:1/0", concurrency: 50, n: 10, record: true}, "127.0.0.1:2")
	for _, want := range []string{`url: "redis://127.0.0.1:1/0"`, `addr: "127.0.0.1:2"`, "concurrency: 50", "n: 10", "record: true"} {
		require.Contains(t, cfg, want)
	}
	require.NotContains(t, cfg, "level", "info logs, the default")
}
