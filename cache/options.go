package cache

import "log/slog"

// Defaults used for zero or negative Options fields; they match the
// defaults of cache.max_value_bytes and cache.memory.max_entries.
const (
	DefaultMaxValueBytes    = 1 << 20
	DefaultMemoryMaxEntries = 10000
)

// Backend names, as returned by Cache.Backend.
const (
	BackendRedis  = "redis"
	BackendMemory = "memory"
)

// KeyPrefix starts every Redis key the cache writes:
// KeyPrefix + namespace + ":" + key.
const KeyPrefix = "taskhost:cache:"

// Options configure the stores. Zero values take the defaults.
type Options struct {
	// MaxValueBytes is the largest value Set accepts (cache.max_value_bytes).
	MaxValueBytes int
	// MemoryMaxEntries bounds the memory store (cache.memory.max_entries).
	// Unused by NewRedis.
	MemoryMaxEntries int
	// Logger receives the fallback's switch messages, at DEBUG;
	// slog.Default when nil.
	// The attribute component=cache is added.
	Logger *slog.Logger
	// OnRedisError, when set, is called by the fallback store (New) for each
	// call that was routed to Redis while it was marked ready and failed with
	// a connection-type error (unreachable, timed out, LOADING, READONLY...); that call was served from
	// memory instead. It runs on the caller's goroutine and must not block.
	// The runtime uses it to nudge its connection monitor.
	OnRedisError func(error)
	// Watch tells the fallback store (New) whether Redis is ready. New
	// calls it once with setReady; from then on the owner calls
	// setReady(true) when Redis becomes ready and setReady(false) when it
	// stops being ready, and the store starts on memory until told ready.
	// Close calls the returned stop func, when not nil. The runtime passes
	// a subscription to its connection monitor, so only the monitor
	// switches the store. Without Watch, the store treats Redis as ready
	// from the start and falls back to memory call by call.
	Watch func(setReady func(ready bool)) (stop func())
}

func (o Options) withDefaults() Options {
	if o.MaxValueBytes <= 0 {
		o.MaxValueBytes = DefaultMaxValueBytes
	}
	if o.MemoryMaxEntries <= 0 {
		o.MemoryMaxEntries = DefaultMemoryMaxEntries
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Logger = o.Logger.With("component", "cache")
	return o
}
