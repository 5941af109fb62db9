package health_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/health"
	"github.com/taskhost/taskhost/internal/redistest"
)

// redisSetup starts a redis-server with a few asynq tasks in two queues and
// returns a client with explicit timeouts and an Inspector over it.
func redisSetup(t *testing.T) (*redistest.Server, redis.UniversalClient, *asynq.Inspector) {
	t.Helper()
	s := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), DialTimeout: 500 * time.Millisecond,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	ac := asynq.NewClientFromRedisClient(c)
	for i, q := range []string{"default", "default", "default", "critical"} {
		_, err := ac.Enqueue(asynq.NewTask("email:send", []byte{byte(i)}), asynq.Queue(q))
		require.NoError(t, err)
	}
	return s, c, asynq.NewInspectorFromRedisClient(c)
}

func TestRedisFuncsAgainstRealServer(t *testing.T) {
	t.Parallel()
	_, c, in := redisSetup(t)
	ctx := context.Background()

	d, err := health.PingFunc(c)(ctx)
	require.NoError(t, err)
	require.Greater(t, d, time.Duration(0))

	info, err := health.InfoFunc(c)(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, info.Version)
	require.Greater(t, info.UsedMemoryBytes, int64(0))
	require.GreaterOrEqual(t, info.UsedMemoryPeakBytes, info.UsedMemoryBytes)
	require.Greater(t, info.MemFragmentationRatio, 0.0)
	require.GreaterOrEqual(t, info.ConnectedClients, int64(1))
	require.Greater(t, info.DBSize, int64(0))
	require.Greater(t, info.UptimeSeconds, int64(-1))

	qs, err := health.QueuesFunc(in)(ctx)
	require.NoError(t, err)
	require.Len(t, qs, 2)
	require.Equal(t, "critical", qs[0].Name)
	require.Equal(t, 1, qs[0].Size)
	require.Equal(t, "default", qs[1].Name)
	require.Equal(t, 3, qs[1].Size)
	require.Equal(t, 3, qs[1].Pending)
	require.GreaterOrEqual(t, qs[1].LatencySeconds, 0.0)
}

// TestFrozenRedisProbesStayWithinTimeout is issue 5's frozen-Redis case at
// the package level: with redis-server SIGSTOPped, every endpoint answers
// within the timeout plus 100ms, and the report says why.
func TestFrozenRedisProbesStayWithinTimeout(t *testing.T) {
	t.Parallel()
	s, c, in := redisSetup(t)
	reg := health.NewRegistry(0)
	require.NoError(t, reg.Add(health.Check{Name: "redis.ping", Critical: true, Run: func(ctx context.Context) error {
		return c.Ping(ctx).Err()
	}}))
	const timeout = 500 * time.Millisecond
	h := health.NewHandler(health.Options{
		Registry: reg, Timeout: timeout,
		Source: health.Source{Ping: health.PingFunc(c), Redis: health.InfoFunc(c), Queues: health.QueuesFunc(in)},
	})
	w := serve(t, h, http.MethodGet, "/healthz")
	require.Equal(t, health.StatusOK, report(t, w).Status)

	s.Pause()
	defer s.Resume() // before the server's Close in t.Cleanup, and the goroutines blocked on it finish
	for _, path := range []string{"/healthz", "/livez", "/readyz", "/healthz"} {
		begin := time.Now()
		w := serve(t, h, http.MethodGet, path)
		require.Less(t, time.Since(begin), timeout+100*time.Millisecond, path)
		if path != "/healthz" {
			require.Equal(t, http.StatusOK, w.Code, path)
			continue
		}
		require.Equal(t, http.StatusServiceUnavailable, w.Code)
		rep := report(t, w)
		require.Equal(t, health.StatusDown, rep.Status)
		require.Equal(t, health.CheckTimeout, rep.Checks[0].Status)
		require.Nil(t, rep.Redis)
		require.Nil(t, rep.Queues)
		for _, src := range rep.Sources {
			require.Equal(t, health.CheckTimeout, src.Status, src.Name)
		}
	}
	s.Resume()
	require.Eventually(t, func() bool {
		return h.Report(context.Background()).Status == health.StatusOK
	}, 5*time.Second, 20*time.Millisecond, "the report recovers once Redis answers again")
}
