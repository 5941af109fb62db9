package health_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/health"
)

func ok(context.Context) error { return nil }

func TestRegistryAdd(t *testing.T) {
	t.Parallel()
	r := health.NewRegistry(0)
	require.NoError(t, r.Add(health.Check{Name: "a", Run: ok}))
	require.ErrorIs(t, r.Add(health.Check{Name: "a", Run: ok}), health.ErrDuplicateCheck)
	require.ErrorIs(t, r.Add(health.Check{Run: ok}), health.ErrInvalidCheck)
	require.ErrorIs(t, r.Add(health.Check{Name: "b"}), health.ErrInvalidCheck)
	require.ErrorIs(t, r.Add(health.Check{Name: "c", Run: ok, Timeout: -time.Second}), health.ErrInvalidCheck)
	require.NoError(t, r.Add(health.Check{Name: "d", Run: ok, Timeout: 5 * time.Second, Critical: true}))

	cs := r.Checks()
	require.Len(t, cs, 2)
	require.Equal(t, "a", cs[0].Name)
	require.Equal(t, health.DefaultTimeout, cs[0].Timeout, "a zero timeout takes the registry's default")
	require.Equal(t, 5*time.Second, cs[1].Timeout)

	require.True(t, r.Remove("a"))
	require.False(t, r.Remove("a"))
	require.NoError(t, r.Add(health.Check{Name: "a", Run: ok}), "a removed name can be added again")
}

func TestRegistryRunResults(t *testing.T) {
	t.Parallel()
	r := health.NewRegistry(200 * time.Millisecond)
	require.NoError(t, r.Add(health.Check{Name: "ok", Run: ok, Critical: true}))
	require.NoError(t, r.Add(health.Check{Name: "fail", Run: func(context.Context) error {
		return errors.New("dial redis://app:hunter2@10.0.0.5:6379: refused")
	}}))
	require.NoError(t, r.Add(health.Check{Name: "panic", Run: func(context.Context) error { panic("boom") }}))
	require.NoError(t, r.Add(health.Check{Name: "ctx", Run: func(ctx context.Context) error {
		<-ctx.Done() // a well-behaved slow check stops at its deadline
		return ctx.Err()
	}}))

	res := r.Run(context.Background())
	require.Len(t, res, 4)
	byName := map[string]health.CheckResult{}
	for _, c := range res {
		byName[c.Name] = c
	}
	require.Equal(t, health.CheckOK, byName["ok"].Status)
	require.True(t, byName["ok"].Critical)
	require.Equal(t, health.CheckFail, byName["fail"].Status)
	require.Contains(t, byName["fail"].Error, "redis://app:***@10.0.0.5:6379", "errors are redacted")
	require.NotContains(t, byName["fail"].Error, "hunter2")
	require.Equal(t, health.CheckFail, byName["panic"].Status)
	require.Contains(t, byName["panic"].Error, "boom")
	require.Equal(t, health.CheckTimeout, byName["ctx"].Status)
	require.InDelta(t, 200, byName["ctx"].DurationMS, 150)
}

func TestRegistryRunHungCheckIsBoundedAndJoined(t *testing.T) {
	t.Parallel()
	bl := newBlocker(t)
	r := health.NewRegistry(150 * time.Millisecond)
	require.NoError(t, r.Add(health.Check{Name: "hung", Run: func(context.Context) error { bl.wait(); return nil }}))
	require.NoError(t, r.Add(health.Check{Name: "fine", Run: ok}))

	for range 3 {
		begin := time.Now()
		res := r.Run(context.Background())
		require.Less(t, time.Since(begin), 150*time.Millisecond+100*time.Millisecond)
		require.Equal(t, "fine", res[0].Name)
		require.Equal(t, health.CheckOK, res[0].Status)
		require.Equal(t, health.CheckTimeout, res[1].Status)
		require.Contains(t, res[1].Error, "timed out")
	}
	require.Equal(t, int32(1), bl.started.Load(), "a check still running is joined, not started again")
}

func TestRegistryRunHonoursContextDeadline(t *testing.T) {
	t.Parallel()
	bl := newBlocker(t)
	r := health.NewRegistry(10 * time.Second)
	require.NoError(t, r.Add(health.Check{Name: "hung", Run: func(context.Context) error { bl.wait(); return nil }}))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	begin := time.Now()
	res := r.Run(ctx)
	require.Less(t, time.Since(begin), 300*time.Millisecond)
	require.Equal(t, health.CheckTimeout, res[0].Status)
}
