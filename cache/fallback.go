package cache

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/connerr"
)

// Cache is the fallback store: it routes to Redis while it is marked ready
// and to a bounded memory store otherwise. It is told the state through
// Options.Watch (the runtime passes its connection monitor) and does not
// decide it; with a Watch it starts not ready, on memory. Nothing else can
// switch it.
//
// While marked ready, a call whose Redis command fails because Redis cannot
// serve (unreachable, timed out, LOADING, READONLY...) is served from memory, and the error is reported to
// Options.OnRedisError; the state does not change. While not ready, no call
// touches Redis, so none waits for a dial. When marked ready again, the memory
// entries are dropped, so nothing written during the outage is served later.
// Likewise, once Redis answers again after such per-call failures, memory is
// dropped.
type Cache struct {
	c     *core
	redis *redisBackend
	mem   *memoryBackend
	log   *slog.Logger
	onErr func(error)

	stopWatch func() // ends Options.Watch; nil when none

	mu          sync.RWMutex // held for writing while switching, for reading by memory-only calls
	ready       atomic.Bool
	dirty       atomic.Bool // memory was written while marked ready
	switches    atomic.Uint64
	redisErrors atomic.Uint64
}

// New returns the fallback store on client, which it never closes. With
// opts.Watch it starts not ready and follows what Watch tells it; without, it
// is ready from the start. It panics on a nil client.
func New(client redis.UniversalClient, opts Options) *Cache {
	if client == nil {
		panic("cache: New: nil client")
	}
	opts = opts.withDefaults()
	f := &Cache{
		redis: &redisBackend{client: client},
		mem:   newMemoryBackend(opts.MemoryMaxEntries),
		log:   opts.Logger,
		onErr: opts.OnRedisError,
	}
	f.c = newCore(f, opts)
	if opts.Watch == nil {
		f.ready.Store(true)
	} else {
		f.stopWatch = opts.Watch(f.setRedisReady)
	}
	return f
}

// Namespace returns the store of namespace ns. It panics when ns is invalid
// (see ValidateNamespace).
func (f *Cache) Namespace(ns string) Store { return f.c.namespace(ns) }

// setRedisReady marks Redis ready or not; Options.Watch calls it. A change
// is counted and logged once, at DEBUG: whoever tells the state (the
// runtime's connection monitor) reports the outage. Switching to Redis
// drops the memory entries.
// It is safe to call concurrently with traffic.
func (f *Cache) setRedisReady(ready bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ready.Load() == ready {
		return
	}
	f.ready.Store(ready)
	f.switches.Add(1)
	if !ready {
		f.log.Debug("cache switched to memory: Redis is not ready", "backend", BackendMemory)
		return
	}
	f.dirty.Store(false)
	dropped := f.mem.clear()
	f.log.Debug("cache switched to Redis; memory entries dropped", "backend", BackendRedis, "dropped", dropped)
}

// Backend returns BackendRedis while marked ready, BackendMemory otherwise.
func (f *Cache) Backend() string {
	if f.ready.Load() {
		return BackendRedis
	}
	return BackendMemory
}

// Switches returns how many times the backend changed.
func (f *Cache) Switches() uint64 { return f.switches.Load() }

// Stats returns the hit, miss and Redis error counts.
func (f *Cache) Stats() Stats {
	s := f.c.stats()
	s.RedisErrors = f.redisErrors.Load()
	return s
}

// Close stops watching (the func Options.Watch returned) and the memory
// store's clean-up goroutine. It does not close the Redis client.
func (f *Cache) Close() {
	if f.stopWatch != nil {
		f.stopWatch()
	}
	f.mem.close()
}

// memoryOnly runs op on memory when not marked ready and reports whether it
// did. The read lock keeps a switch to Redis, which drops memory, from
// passing a write that would then survive as a stale entry.
func (f *Cache) memoryOnly(op func()) bool {
	if f.ready.Load() {
		return false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.ready.Load() {
		return false
	}
	op()
	return true
}

// redisFailed reports whether err, from a Redis call made while marked
// ready, should be answered from memory instead. After a success it drops
// what such fallbacks wrote to memory, since Redis is authoritative again.
func (f *Cache) redisFailed(ctx context.Context, err error) bool {
	if err == nil || errors.Is(err, ErrNotFound) {
		if f.dirty.Load() && f.dirty.CompareAndSwap(true, false) {
			f.mem.clear()
		}
		return false
	}
	if !connerr.DownFor(ctx, err) {
		return false
	}
	f.redisErrors.Add(1)
	if f.onErr != nil {
		f.onErr(err)
	}
	return true
}

func (f *Cache) get(ctx context.Context, ns, key string) (v []byte, err error) {
	if f.memoryOnly(func() { v, err = f.mem.get(ctx, ns, key) }) {
		return v, err
	}
	v, err = f.redis.get(ctx, ns, key)
	if f.redisFailed(ctx, err) {
		return f.mem.get(ctx, ns, key)
	}
	return v, err
}

func (f *Cache) set(ctx context.Context, ns, key string, value []byte, ttl time.Duration) (err error) {
	if f.memoryOnly(func() { err = f.mem.set(ctx, ns, key, value, ttl) }) {
		return err
	}
	err = f.redis.set(ctx, ns, key, value, ttl)
	if f.redisFailed(ctx, err) {
		err = f.mem.set(ctx, ns, key, value, ttl)
		f.dirty.Store(true) // after the write, so that the next success drops it
	}
	return err
}

func (f *Cache) del(ctx context.Context, ns, key string) (err error) {
	if f.memoryOnly(func() { err = f.mem.del(ctx, ns, key) }) {
		return err
	}
	err = f.redis.del(ctx, ns, key)
	if f.redisFailed(ctx, err) {
		return f.mem.del(ctx, ns, key)
	}
	return err
}
