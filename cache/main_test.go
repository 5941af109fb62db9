package cache_test

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/internal/redistest"
)

// quiet discards the switch messages of stores whose logs no test reads.
var quiet = slog.New(slog.DiscardHandler)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newClient returns a client with the runtime's default timeouts: an
// unreachable Redis fails a call within about half a second.
func newClient(t testing.TB, addr string) *redis.Client { return redistest.Client(t, addr) }

// countingHook counts dials and commands sent through a client.
type countingHook struct{ dials, cmds atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
		h.dials.Add(1)
		return next(ctx, network, addr)
	}
}

func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.cmds.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// namespacer is what the three root stores have in common.
type namespacer interface {
	Namespace(ns string) cache.Store
}

// rawKey is the Redis key the cache uses, spelled out so tests pin the format.
func rawKey(ns, key string) string { return "taskhost:cache:" + ns + ":" + key }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
