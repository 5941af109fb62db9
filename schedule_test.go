package taskhost_test

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/redistest"
)

// Three runtimes on one Redis run a config schedule "@every 1s": each tick
// runs once, under its tick's task ID; /healthz of each shows the schedule's
// next and last run, its role and the live workers (processes: the three
// runtimes share one here, so the servers count them), and /metrics the
// schedule's series.
func TestScheduleRunsOncePerTickAcrossRuntimes(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	var mu sync.Mutex
	runs := map[string]int{}
	spdSinks.Store(t.Name(), asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		mu.Lock()
		runs[id]++
		mu.Unlock()
		return nil
	}))
	t.Cleanup(func() { spdSinks.Delete(t.Name()) })

	var rts []*taskhost.Runtime
	for i := range 3 {
		cfg := testConfig(t, s.Addr())
		cfg.Worker.Fetchers = 2
		cfg.Plugins = map[string]map[string]any{"spd-probe": {"sink": t.Name()}}
		cfg.Schedules = map[string]taskhost.ScheduleConfig{"tick": {Cron: "@every 1s", Type: "spd:probe", Payload: `{}`}}
		rts = append(rts, startRuntime(t, cfg))
		time.Sleep(time.Duration(200+150*i) * time.Millisecond) // workers start at different times
	}
	for _, rt := range rts {
		waitState(t, rt, 5*time.Second, "ready")
	}
	first := time.Now().Truncate(time.Second).Add(2 * time.Second) // every runtime runs its loop by then
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for id := range runs {
			if tickOf(t, id).After(first) {
				n++
			}
		}
		return n >= 4
	}, 15*time.Second, 20*time.Millisecond)

	mu.Lock()
	ticks := map[int64]int{} // Unix second -> runs
	for id, n := range runs {
		require.Equal(t, 1, n, "tick %s ran %d times", id, n)
		ticks[tickOf(t, id).Unix()] += n
	}
	mu.Unlock()
	for tick := first; tick.Before(first.Add(4 * time.Second)); tick = tick.Add(time.Second) {
		require.Equal(t, 1, ticks[tick.Unix()], "tick %s", tick.UTC().Format(time.RFC3339))
	}

	for _, rt := range rts {
		base := "http://" + rt.HealthAddr()
		_, rep, body := h5Report(t, base)
		require.Len(t, rep.Schedules, 1, body)
		sc := rep.Schedules[0]
		require.Equal(t, "schedules.tick", sc.Name)
		require.Equal(t, "spd:probe", sc.Type)
		require.Equal(t, "default", sc.Queue)
		require.NotNil(t, sc.NextRun)
		require.NotNil(t, sc.LastRun)
		require.WithinDuration(t, time.Now(), *sc.NextRun, 2*time.Second)
		require.NotNil(t, rep.Fleet, body)
		require.Equal(t, taskhost.RolePeer, rep.Fleet.Role)
		require.Equal(t, 6, rep.Fleet.Servers, "3 runtimes with 2 fetchers each")
		require.Equal(t, 1, rep.Fleet.Workers, "one process")
		_, metrics := h5Get(t, base+"/metrics")
		require.Contains(t, metrics, `taskhost_schedule_next_run_timestamp_seconds{schedule="schedules.tick"}`)
		require.Contains(t, metrics, `taskhost_schedule_last_run_timestamp_seconds{schedule="schedules.tick"}`)
		require.Contains(t, metrics, `taskhost_schedule_ticks_total{result="duplicate",schedule="schedules.tick"}`)
	}
}

// tickOf parses the tick out of a tick's task ID, <name>@<RFC 3339 time>.
func tickOf(t *testing.T, id string) time.Time {
	t.Helper()
	_, at, ok := strings.Cut(id, "@")
	require.True(t, ok, "task ID %q is not a tick's", id)
	tick, err := time.Parse(time.RFC3339, at)
	require.NoError(t, err)
	return tick
}

// TestCronRegistryReadByAsynq checks that asynq's tools (its Inspector, and
// with it `asynq cron ls` and the dashboard) list the scheduler's entries
// and their history, and that a stopped worker's entries go away.
func TestCronRegistryReadByAsynq(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	spdSinks.Store(t.Name(), asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
	t.Cleanup(func() { spdSinks.Delete(t.Name()) })
	cfg := testConfig(t, s.Addr())
	cfg.Plugins = map[string]map[string]any{"spd-probe": {"sink": t.Name()}}
	three := 3
	cfg.Schedules = map[string]taskhost.ScheduleConfig{"tick": {Cron: "@every 1s", Type: "spd:probe", Payload: `{"secret":"sekret-7"}`,
		Queue: "low", Options: taskhost.ScheduleOptions{MaxRetry: &three}}}
	rt, err := taskhost.New(cfg, taskhost.Options{Logger: taskhost.NewLogger(cfg.Log, io.Discard)})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = rt.Stop(context.Background())
		}
	})
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: s.Addr()})
	t.Cleanup(func() { _ = insp.Close() })

	var entry *asynq.SchedulerEntry
	require.Eventually(t, func() bool {
		entries, err := insp.SchedulerEntries()
		if err != nil || len(entries) != 1 {
			return false
		}
		entry = entries[0]
		return true
	}, 10*time.Second, 50*time.Millisecond, "the entry is listed")
	require.Equal(t, "schedules.tick", entry.ID)
	require.Equal(t, "@every 1s", entry.Spec)
	require.Equal(t, "spd:probe", entry.Task.Type())
	require.Empty(t, entry.Task.Payload(), "payloads are not published")
	var opts []string
	for _, o := range entry.Opts {
		opts = append(opts, o.String())
	}
	require.Contains(t, opts, `Queue("low")`)
	require.Contains(t, opts, `MaxRetry(3)`)
	require.WithinDuration(t, time.Now(), entry.Next, 2*time.Second)

	var events []*asynq.SchedulerEnqueueEvent
	require.Eventually(t, func() bool {
		events, err = insp.ListSchedulerEnqueueEvents("schedules.tick")
		return err == nil && len(events) > 0
	}, 10*time.Second, 50*time.Millisecond, "the ticks are in the entry's history")
	require.Regexp(t, `^schedules\.tick@`, events[0].TaskID)
	require.WithinDuration(t, time.Now(), events[0].EnqueuedAt, 10*time.Second)

	require.NoError(t, rt.Stop(context.Background()))
	stopped = true
	entries, err := insp.SchedulerEntries()
	require.NoError(t, err)
	require.Empty(t, entries, "a stopped worker's entries are removed")
}
