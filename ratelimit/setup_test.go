package ratelimit_test

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/internal/testlog"
	"github.com/taskhost/taskhost/ratelimit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fastClient is a client with the short timeouts the runtime uses: no call
// waits much more than 500 ms for an unreachable Redis.
func fastClient(t testing.TB, addr string) *redis.Client { return redistest.Client(t, addr) }

// adminClient is a plain client for inspecting the server from the test.
func adminClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// syncBuffer is the one goroutine-safe log buffer of the tests.
type syncBuffer = testlog.Buffer

type env struct {
	srv       *redistest.Server
	client    *redis.Client
	admin     *redis.Client
	reg       *ratelimit.Registry
	sw        *redistest.Switch // the state, as the runtime's monitor would tell it
	log       *syncBuffer
	redisErrs atomic.Int64
}

type setupOpts struct {
	limits   map[string]string
	notReady bool
}

// setup starts a redis-server and a Registry on it, marked ready.
func setup(t *testing.T, opts ...setupOpts) *env {
	t.Helper()
	var o setupOpts
	if len(opts) > 0 {
		o = opts[0]
	}
	e := &env{srv: redistest.Start(t), sw: &redistest.Switch{}, log: &syncBuffer{}}
	e.client = fastClient(t, e.srv.Addr())
	e.admin = adminClient(t, e.srv.Addr())
	reg, err := ratelimit.New(e.client, ratelimit.Options{
		Limits:       o.limits,
		Logger:       slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnRedisError: func(error) { e.redisErrs.Add(1) },
		Watch:        e.sw.Watch,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = reg.Close() })
	e.reg = reg
	if !o.notReady {
		e.sw.Set(true)
		require.Equal(t, ratelimit.BackendRedis, reg.Backend())
	}
	return e
}

// redisCount is the counter that Redis holds for a limiter key, or -1.
func (e *env) redisCount(t *testing.T, key string) int64 {
	t.Helper()
	n, err := e.admin.Get(context.Background(), ratelimit.KeyPrefix+key).Int64()
	if err == redis.Nil {
		return -1
	}
	require.NoError(t, err)
	return n
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
