package ratelimit

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/store/common"
	"github.com/ulule/limiter/v3/drivers/store/memory"

	"github.com/taskhost/taskhost/internal/connerr"
)

// resetNote carries the exact end of the window out of a store call. ulule's
// limiter.Context rounds Reset down to whole seconds, which would make a
// caller retry up to a second early; both stores here fill the note instead.
type resetNote struct{ at time.Time }

type noteKey struct{}

func withNote(ctx context.Context, n *resetNote) context.Context {
	return context.WithValue(ctx, noteKey{}, n)
}

func noteReset(ctx context.Context, at time.Time) {
	if n, ok := ctx.Value(noteKey{}).(*resetNote); ok {
		n.at = at
	}
}

// scriptClient is the client handed to ulule's Redis store. It passes every
// call through unchanged and only reads the TTL out of the script's reply
// ({count, pttl}), so the exact window end costs no extra round trip.
type scriptClient struct{ redis.UniversalClient }

func (c scriptClient) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	cmd := c.UniversalClient.EvalSha(ctx, sha, keys, args...)
	if n, ok := ctx.Value(noteKey{}).(*resetNote); ok && cmd.Err() == nil {
		if v, ok := cmd.Val().([]any); ok && len(v) == 2 {
			if ttl, ok := v[1].(int64); ok && ttl > 0 {
				n.at = time.Now().Add(time.Duration(ttl) * time.Millisecond)
			}
		}
	}
	return cmd
}

// memoryStore is a limiter.Store on ulule's in-memory counter cache
// (drivers/store/memory), with the same fixed-window counting as ulule's
// memory.Store. It is built on the cache rather than on memory.Store for two
// reasons: the exact window end is known, and expired counters are swept by
// a timer that Close stops (memory.Store's sweeper goroutine only stops when
// the garbage collector finalizes the store).
type memoryStore struct {
	cache atomic.Pointer[memory.CacheWrapper]
}

func newMemoryStore() *memoryStore {
	m := &memoryStore{}
	m.drop()
	return m
}

// drop forgets every counter.
func (m *memoryStore) drop() { m.cache.Store(memory.NewCache(0)) }

// sweep deletes expired counters.
func (m *memoryStore) sweep() { m.cache.Load().Clean() }

func (m *memoryStore) answer(ctx context.Context, rate limiter.Rate, count int64, exp time.Time) limiter.Context {
	noteReset(ctx, exp)
	return common.GetContextFromState(time.Now(), rate, exp, count)
}

func (m *memoryStore) Get(ctx context.Context, key string, rate limiter.Rate) (limiter.Context, error) {
	count, exp := m.cache.Load().Increment(key, 1, rate.Period)
	return m.answer(ctx, rate, count, exp), nil
}

func (m *memoryStore) Peek(ctx context.Context, key string, rate limiter.Rate) (limiter.Context, error) {
	count, exp := m.cache.Load().Get(key, rate.Period)
	return m.answer(ctx, rate, count, exp), nil
}

func (m *memoryStore) Reset(ctx context.Context, key string, rate limiter.Rate) (limiter.Context, error) {
	count, exp := m.cache.Load().Reset(key, rate.Period)
	return m.answer(ctx, rate, count, exp), nil
}

func (m *memoryStore) Increment(ctx context.Context, key string, count int64, rate limiter.Rate) (limiter.Context, error) {
	n, exp := m.cache.Load().Increment(key, count, rate.Period)
	return m.answer(ctx, rate, n, exp), nil
}

// fallbackStore is the limiter.Store that every limiter of a Registry uses:
// Redis while the Registry is marked ready, memory otherwise, and memory for
// a single call that Redis fails with a connection-type error.
type fallbackStore struct{ r *Registry }

func (f fallbackStore) Get(ctx context.Context, key string, rate limiter.Rate) (limiter.Context, error) {
	c, err := f.do(ctx, func(s limiter.Store) (limiter.Context, error) { return s.Get(ctx, key, rate) })
	if err == nil {
		f.r.checks.Add(1)
		if c.Reached {
			f.r.rejections.Add(1)
		}
	}
	return c, err
}

func (f fallbackStore) Peek(ctx context.Context, key string, rate limiter.Rate) (limiter.Context, error) {
	return f.do(ctx, func(s limiter.Store) (limiter.Context, error) { return s.Peek(ctx, key, rate) })
}

func (f fallbackStore) Reset(ctx context.Context, key string, rate limiter.Rate) (limiter.Context, error) {
	return f.do(ctx, func(s limiter.Store) (limiter.Context, error) { return s.Reset(ctx, key, rate) })
}

func (f fallbackStore) Increment(ctx context.Context, key string, count int64, rate limiter.Rate) (limiter.Context, error) {
	return f.do(ctx, func(s limiter.Store) (limiter.Context, error) { return s.Increment(ctx, key, count, rate) })
}

func (f fallbackStore) do(ctx context.Context, op func(limiter.Store) (limiter.Context, error)) (limiter.Context, error) {
	if s := f.r.redisStore(); s != nil {
		c, err := op(s)
		if err == nil {
			return c, nil
		}
		if !connerr.DownFor(ctx, err) {
			return c, err
		}
		f.r.redisFailed(err)
	}
	return op(f.r.mem)
}
