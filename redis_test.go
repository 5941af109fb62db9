package taskhost_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/healthcheck"
	"github.com/taskhost/taskhost/internal/redistest"
)

func TestStateNames(t *testing.T) {
	t.Parallel()
	for s, want := range map[taskhost.State]string{
		taskhost.StateConnecting:   "connecting",
		taskhost.StateReady:        "ready",
		taskhost.StateReconnecting: "reconnecting",
		taskhost.StateDown:         "down",
		taskhost.StateClosed:       "closed",
	} {
		require.Equal(t, want, s.String())
		text, err := s.MarshalText()
		require.NoError(t, err)
		require.Equal(t, want, string(text))
	}
}

// TestConnectionAPI walks what the seed's RedisService offered through one
// runtime's life: state changes, WaitReady, Diagnostics, FlushDB, and the
// answers once Redis is gone and once the runtime stopped.
func TestConnectionAPI(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	cfg := testConfig(t, s.Addr())
	rt, err := taskhost.New(cfg, taskhost.Options{Logger: quietLogger()})
	require.NoError(t, err)
	require.Equal(t, taskhost.StateConnecting, rt.State())
	require.False(t, rt.Ready())

	var mu sync.Mutex
	var seen []string
	unsub := rt.Subscribe(func(from, to taskhost.State) {
		mu.Lock()
		seen = append(seen, from.String()+"->"+to.String())
		mu.Unlock()
	})
	defer unsub()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, rt.Start(ctx))
	stopped := false
	defer func() {
		if !stopped {
			_ = rt.Stop(context.Background())
		}
	}()
	require.NoError(t, rt.WaitReady(ctx))
	require.True(t, rt.Ready())
	require.Equal(t, taskhost.StateReady, rt.State())

	for _, k := range []string{"a", "b", "c"} {
		require.NoError(t, rt.Redis().Set(ctx, "diag:"+k, "v", 0).Err())
	}
	d, err := rt.Diagnostics(ctx)
	require.NoError(t, err)
	require.Equal(t, taskhost.StateReady, d.State)
	require.Positive(t, d.PingLatency)
	require.Regexp(t, `^\d+\.\d+\.\d+`, d.Version)
	require.Equal(t, d.Version, d.Info["redis_version"])
	require.Equal(t, "standalone", d.Mode)
	require.Positive(t, d.UsedMemory)
	require.GreaterOrEqual(t, d.PeakMemory, d.UsedMemory/2)
	require.Positive(t, d.FragmentationRatio)
	require.GreaterOrEqual(t, d.ConnectedClients, int64(2))
	require.GreaterOrEqual(t, d.DBSize, int64(3))
	require.Contains(t, d.Info, "uptime_in_seconds")
	require.GreaterOrEqual(t, d.Pool.TotalConns, uint32(1))

	require.NoError(t, rt.FlushDB(ctx))
	require.Zero(t, rt.Redis().Exists(ctx, "diag:a", "diag:b", "diag:c").Val(), "FlushDB deletes every key")
	queues, err := asynq.NewInspectorFromRedisClient(redistest.Client(t, s.Addr())).Queues()
	require.NoError(t, err)
	require.Contains(t, queues, "default", "the worker's queues are listed again after a flush")

	s.Kill()
	require.Eventually(t, func() bool { return !rt.Ready() }, 10*time.Second, 10*time.Millisecond)
	begin := time.Now()
	d, err = rt.Diagnostics(ctx)
	require.ErrorIs(t, err, taskhost.ErrNotReady)
	require.Less(t, time.Since(begin), 100*time.Millisecond, "not ready: answered at once")
	require.NotEqual(t, taskhost.StateReady, d.State)

	require.NoError(t, rt.Stop(context.Background()))
	stopped = true
	require.Equal(t, taskhost.StateClosed, rt.State())
	require.ErrorIs(t, rt.WaitReady(ctx), taskhost.ErrClosed)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, "connecting->ready", seen[0])
	require.Equal(t, "ready->reconnecting", seen[1])
	require.Contains(t, seen[len(seen)-1], "->closed")
}

func TestClientHandles(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	rt := startRuntime(t, testConfig(t, s.Addr()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, rt.WaitReady(ctx))

	a, b := rt.Client(), rt.Client()
	res, err := a.Submit(ctx, asynq.NewTask("h:one", nil), asynq.Queue("h-parked"))
	require.NoError(t, err)
	require.False(t, res.Held)
	require.NotEmpty(t, res.Info.ID)

	require.NoError(t, a.Close())
	_, err = a.Enqueue(asynq.NewTask("h:two", nil))
	require.ErrorIs(t, err, taskhost.ErrClosed)
	_, err = b.EnqueueContext(ctx, asynq.NewTask("h:three", nil), asynq.Queue("h-parked"))
	require.NoError(t, err, "closing one handle leaves the others and the outbox open")
}

func TestAddCheck(t *testing.T) {
	t.Parallel()
	rt, err := taskhost.New(testConfig(t, redistest.ClosedAddr(t)), taskhost.Options{Logger: quietLogger()})
	require.NoError(t, err)
	defer func() { _ = rt.Stop(context.Background()) }()
	ok := healthcheck.Check{Name: "app.db", Run: func(context.Context) error { return nil }}
	require.NoError(t, rt.AddCheck(ok))
	require.ErrorIs(t, rt.AddCheck(ok), healthcheck.ErrDuplicateCheck)
	require.ErrorIs(t, rt.AddCheck(healthcheck.Check{Name: "app.nil"}), healthcheck.ErrInvalidCheck)
	require.True(t, errors.Is(rt.AddCheck(healthcheck.Check{Run: ok.Run}), healthcheck.ErrInvalidCheck))
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
