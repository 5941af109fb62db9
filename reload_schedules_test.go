package taskhost_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/redistest"
)

// A reload applies the schedules section: an added entry ticks, a removed
// one stops at once and leaves /healthz and /metrics; a bad entry (a cron
// that does not parse, a type no plugin handles) refuses the whole reload,
// naming the key, and the running entries keep ticking.
func TestReloadSchedules(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	var mu sync.Mutex
	runs := map[string][]time.Time{} // entry name -> ticks run
	spdSinks.Store(t.Name(), asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		name, _, _ := strings.Cut(id, "@")
		mu.Lock()
		runs[name] = append(runs[name], tickOf(t, id))
		mu.Unlock()
		return nil
	}))
	t.Cleanup(func() { spdSinks.Delete(t.Name()) })
	count := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return len(runs[name])
	}

	cfg := testConfig(t, s.Addr())
	cfg.Plugins = map[string]map[string]any{"spd-probe": {"sink": t.Name()}}
	cfg.Schedules = map[string]taskhost.ScheduleConfig{"a": {Cron: "@every 1s", Type: "spd:probe", Payload: `{}`}}
	src := &source{cfg: cfg}
	rt, err := taskhost.New(cfg, taskhost.Options{ConfigSource: src.load})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, rt.Start(ctx))
	t.Cleanup(func() { require.NoError(t, rt.Stop(context.Background())) })
	require.Eventually(t, func() bool { return count("schedules.a") >= 1 }, 15*time.Second, 20*time.Millisecond)

	// Add b, remove a.
	src.set(func(c *taskhost.Config) {
		c.Schedules = map[string]taskhost.ScheduleConfig{"b": {Cron: "@every 1s", Type: "spd:probe", Payload: `{}`}}
	})
	res, err := rt.Reload(ctx)
	require.NoError(t, err)
	removedAt := time.Now()
	require.Equal(t, taskhost.ReloadApplied, res.Outcome)
	require.Equal(t, []string{"schedules.a", "schedules.b"}, res.Applied)
	require.Eventually(t, func() bool { return count("schedules.b") >= 2 }, 15*time.Second, 20*time.Millisecond)
	mu.Lock()
	for _, tick := range runs["schedules.a"] {
		require.False(t, tick.After(removedAt), "schedules.a ticked at %s, after its removal", tick)
	}
	mu.Unlock()

	base := "http://" + rt.HealthAddr()
	_, rep, body := h5Report(t, base)
	require.Len(t, rep.Schedules, 1, body)
	require.Equal(t, "schedules.b", rep.Schedules[0].Name)
	_, metrics := h5Get(t, base+"/metrics")
	require.Contains(t, metrics, `schedule="schedules.b"`)
	require.NotContains(t, metrics, `schedule="schedules.a"`)

	// A bad cron or an unhandled type refuses it all; b keeps ticking.
	for key, bad := range map[string]map[string]taskhost.ScheduleConfig{
		"schedules.b.cron": {"b": {Cron: "every second", Type: "spd:probe"}, "c": {Cron: "@every 1s", Type: "spd:probe"}},
		"schedules.c.type": {"b": {Cron: "@every 2s", Type: "spd:probe"}, "c": {Cron: "@every 1s", Type: "nobody:handles"}},
	} {
		src.set(func(c *taskhost.Config) { c.Schedules = bad })
		res, err := rt.Reload(ctx)
		require.ErrorIs(t, err, taskhost.ErrInvalidConfig, key)
		require.Equal(t, taskhost.ReloadInvalid, res.Outcome)
		require.Contains(t, res.Error, key)
	}
	before := count("schedules.b")
	require.Eventually(t, func() bool { return count("schedules.b") >= before+2 }, 15*time.Second, 20*time.Millisecond)
	_, rep, body = h5Report(t, base)
	require.Len(t, rep.Schedules, 1, body)
	require.Equal(t, "@every 1s", rep.Schedules[0].Spec)
	require.Zero(t, count("schedules.c"))
}
