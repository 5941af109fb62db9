package canary

import (
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskhost/taskhost/plugins"
	"github.com/taskhost/taskhost/plugins/pluginstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// setup provisions a canary with config on a test host, on a fake clock.
func setup(t *testing.T, config map[string]any) (*Canary, *pluginstest.Host, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	h := pluginstest.NewHost(t, pluginstest.Options{ID: ID, Config: config})
	c := &Canary{now: clk.now}
	require.NoError(t, h.Provision(t.Context(), c))
	return c, h, clk
}

func TestProvisionSchedulesTick(t *testing.T) {
	t.Parallel()
	_, h, _ := setup(t, nil)
	require.Equal(t, []string{TaskType}, h.TaskTypes())

	s := h.Schedules()
	require.Len(t, s, 1)
	require.Equal(t, DefaultEvery, s[0].Spec)
	require.Equal(t, TaskType, s[0].Task.Type())
	require.Contains(t, s[0].Opts, asynq.MaxRetry(0))
	// The scheduled payload is one the handler accepts.
	require.NoError(t, h.RunTask(t.Context(), s[0].Task))

	checks := h.Checks()
	require.Len(t, checks, 1)
	require.Equal(t, CheckName, checks[0].Name)
	require.False(t, checks[0].Critical, "a stale canary degrades, it does not take the worker down")
}

func TestCheckFollowsTicks(t *testing.T) {
	t.Parallel()
	_, h, clk := setup(t, nil)
	ctx := t.Context()

	// Starting: no tick yet, but within stale_after.
	require.NoError(t, h.RunCheck(ctx, CheckName))
	clk.advance(DefaultStaleAfter + time.Second)
	err := h.RunCheck(ctx, CheckName)
	require.ErrorIs(t, err, ErrStale)
	require.ErrorContains(t, err, "no tick in 2m1s since start")

	// A tick makes it healthy.
	require.NoError(t, h.Run(ctx, TaskType, []byte(`{}`)))
	require.NoError(t, h.RunCheck(ctx, CheckName))
	clk.advance(DefaultStaleAfter - time.Second)
	require.NoError(t, h.RunCheck(ctx, CheckName))

	// No tick for longer than stale_after.
	clk.advance(2 * time.Second)
	err = h.RunCheck(ctx, CheckName)
	require.ErrorIs(t, err, ErrStale)
	require.ErrorContains(t, err, "last tick 2m1s ago, at 2026-03-01T12:02:01Z")

	require.NoError(t, h.Run(ctx, TaskType, []byte(`{}`)))
	require.NoError(t, h.RunCheck(ctx, CheckName))
}

func TestTickIsInTheCache(t *testing.T) {
	t.Parallel()
	_, h, clk := setup(t, nil)
	require.NoError(t, h.Run(t.Context(), TaskType, []byte(`{}`)))
	v, err := h.Cache().Get(t.Context(), lastTickKey)
	require.NoError(t, err)
	require.Equal(t, clk.now().Format(time.RFC3339Nano), string(v))
}

func TestConfig(t *testing.T) {
	t.Parallel()
	c, h, clk := setup(t, map[string]any{"every": "*/5 * * * *", "stale_after": "11m"})
	require.Equal(t, "*/5 * * * *", h.Schedules()[0].Spec)
	require.Equal(t, 11*time.Minute, c.cfg.StaleAfter)
	require.NoError(t, h.Run(t.Context(), TaskType, []byte(`{}`)))
	clk.advance(10 * time.Minute)
	require.NoError(t, h.RunCheck(t.Context(), CheckName))
	clk.advance(2 * time.Minute)
	require.ErrorIs(t, h.RunCheck(t.Context(), CheckName), ErrStale)
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		config map[string]any
		want   string
	}{
		{map[string]any{"interval": "1m"}, "plugins.canary.interval: unknown key"},
		{map[string]any{"every": "every minute"}, `provision: plugins.canary.every: schedule "every minute" for canary:tick: `},
		{map[string]any{"stale_after": "0s"}, "plugins.canary.stale_after: 0s is not positive"},
		{map[string]any{"stale_after": 120}, "plugins.canary.stale_after: 120 is not a duration"},
	} {
		h := pluginstest.NewHost(t, pluginstest.Options{ID: ID, Config: tt.config})
		err := h.Provision(t.Context(), &Canary{})
		require.ErrorContains(t, err, tt.want)
		require.ErrorIs(t, err, plugins.ErrInvalidConfig, "the worker exits 2")
		require.NotContains(t, err.Error(), "invalid configuration: plugins.canary:", "the key once")
	}
}

func TestMalformedTickArchived(t *testing.T) {
	t.Parallel()
	_, h, _ := setup(t, nil)
	err := h.Run(t.Context(), TaskType, []byte(`{"x":1}`))
	require.ErrorIs(t, err, asynq.SkipRetry)
	require.ErrorIs(t, err, plugins.ErrMalformedPayload)
}

func TestRegistered(t *testing.T) {
	t.Parallel()
	info, ok := plugins.Lookup(ID)
	require.True(t, ok)
	_, isCanary := info.New().(*Canary)
	require.True(t, isCanary)
}

func TestReloadChangesStaleAfterOnly(t *testing.T) {
	t.Parallel()
	_, h, clk := setup(t, map[string]any{"stale_after": "1m"})
	ctx := t.Context()
	require.NoError(t, h.Run(ctx, TaskType, []byte(`{}`)))
	clk.advance(90 * time.Second)
	require.ErrorIs(t, h.RunCheck(ctx, CheckName), ErrStale)

	require.NoError(t, h.Reload(ctx, map[string]any{"stale_after": "2m"}))
	require.NoError(t, h.RunCheck(ctx, CheckName), "the new stale_after applies at once")

	err := h.Reload(ctx, map[string]any{"stale_after": "2m", "every": "@every 5s"})
	require.ErrorIs(t, err, plugins.ErrInvalidConfig)
	require.ErrorContains(t, err, "plugins.canary.every: changing the schedule needs a restart")
	err = h.Reload(ctx, map[string]any{"stale_after": "10s", "bogus": 1})
	require.ErrorContains(t, err, "plugins.canary.bogus")
	require.NoError(t, h.RunCheck(ctx, CheckName), "a refused reload changes nothing")
}
