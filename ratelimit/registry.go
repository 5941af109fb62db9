package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/connerr"
	"github.com/ulule/limiter/v3"
	redisstore "github.com/ulule/limiter/v3/drivers/store/redis"
)

// KeyPrefix starts every Redis key this package writes:
// taskhost:ratelimit:<limiter name>:<key>.
const KeyPrefix = "taskhost:ratelimit:"

// Backend names, as returned by Registry.Backend.
const (
	BackendRedis  = "redis"
	BackendMemory = "memory"
)

// ErrUnknownLimiter is returned by Named for a name that is not configured.
var ErrUnknownLimiter = errors.New("ratelimit: no such limiter")

// buildRetryEvery throttles new attempts to build the Redis store while the
// Registry is marked ready but the last attempt failed.
const buildRetryEvery = time.Second

// Options configure a Registry. The zero value is valid.
type Options struct {
	// Limits are the configured named rates, ratelimit.limits.<name>, e.g.
	// {"api": "100-S"}. Named hands them out.
	Limits map[string]string
	// Logger receives one line per backend switch, at DEBUG (whoever calls
	// SetRedisReady reports the outage: the runtime's connection monitor),
	// and a warning when the Redis scripts cannot be loaded; slog.Default()
	// when nil. The attribute component=ratelimit is added.
	Logger *slog.Logger
	// OnRedisError, when set, is called for each check that Redis failed
	// with a connection-type error while the Registry was marked ready. That
	// check was answered from memory. It must not block.
	OnRedisError func(error)
	// SweepInterval is how often expired in-memory counters are deleted;
	// 30s when zero.
	SweepInterval time.Duration
	// Watch tells the Registry whether Redis is ready. New calls it once
	// with setReady; from then on the owner calls setReady(true) when Redis
	// becomes ready and setReady(false) when it stops being ready, and the
	// Registry counts in memory until told ready. Close calls the returned
	// stop func, when not nil. The runtime passes a subscription to its
	// connection monitor, so only the monitor switches the Registry.
	// Without Watch, Redis is taken as ready from the start: the Redis store
	// is built on the first check, and a check that Redis cannot serve is
	// answered from memory.
	Watch func(setReady func(ready bool)) (stop func())
}

// Registry hands out limiters that share one fallback store: ulule's Redis
// store while Redis is marked ready, its in-memory counters while not.
//
// While counting is in memory, every limit applies per process: N workers
// together admit up to N times the rate. When Redis is ready again, counting
// moves back to Redis and the in-memory counters are dropped.
//
// The Registry does not decide when Redis is down; the runtime tells it
// through Options.Watch, from its connection monitor, and nothing else can
// switch it. A watched Registry starts on memory.
type Registry struct {
	client       redis.UniversalClient
	log          *slog.Logger
	onRedisError func(error)
	mem          *memoryStore
	store        fallbackStore

	namedMu sync.RWMutex
	named   map[string]*Limiter // guarded by namedMu

	ready atomic.Bool
	rs    atomic.Pointer[limiter.Store] // ulule's Redis store, built on the first ready

	mu          sync.Mutex // serialises builds and switch bookkeeping
	backend     string     // as last logged; guarded by mu
	lastBuild   time.Time  // guarded by mu
	buildFailed bool       // guarded by mu

	stopWatch func() // ends Options.Watch; nil when none

	sweepEvery time.Duration
	sweepMu    sync.Mutex
	sweeper    *time.Timer // nil once closed; guarded by sweepMu

	switches    atomic.Uint64
	checks      atomic.Uint64
	rejections  atomic.Uint64
	redisErrors atomic.Uint64
}

// New returns a Registry on client. With opts.Watch it counts in memory until
// told that Redis is ready; without, it counts on Redis from the first check.
// It never touches Redis itself. A nil client gives a memory-only Registry.
// Every rate in opts.Limits is parsed; a bad one is an error naming its key,
// ratelimit.limits.<name>. Close stops the Registry's sweeper.
func New(client redis.UniversalClient, opts Options) (*Registry, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	r := &Registry{
		client:       client,
		log:          log.With("component", "ratelimit"),
		onRedisError: opts.OnRedisError,
		mem:          newMemoryStore(),
		named:        make(map[string]*Limiter, len(opts.Limits)),
		backend:      BackendMemory,
		sweepEvery:   opts.SweepInterval,
	}
	r.store = fallbackStore{r: r}
	if r.sweepEvery <= 0 {
		r.sweepEvery = 30 * time.Second
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(opts.Limits)) {
		l, err := r.newLimiter(name, opts.Limits[name], "ratelimit.limits."+name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.named[name] = l
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r.sweeper = time.AfterFunc(r.sweepEvery, r.sweep)
	if opts.Watch == nil {
		r.ready.Store(true) // the store is built by the first check
	} else {
		r.stopWatch = opts.Watch(r.setRedisReady)
	}
	return r, nil
}

func (r *Registry) sweep() {
	r.mem.sweep()
	r.sweepMu.Lock()
	defer r.sweepMu.Unlock()
	if r.sweeper != nil {
		r.sweeper.Reset(r.sweepEvery)
	}
}

// Close stops watching (the func Options.Watch returned) and sweeping
// expired in-memory counters. Limiters keep working. It does not close the
// Redis client, which the caller owns.
func (r *Registry) Close() error {
	if r.stopWatch != nil {
		r.stopWatch()
	}
	r.sweepMu.Lock()
	defer r.sweepMu.Unlock()
	if r.sweeper != nil {
		r.sweeper.Stop()
		r.sweeper = nil
	}
	return nil
}

// Store is the Registry's fallback limiter.Store, for use with ulule's own
// limiter.New and middlewares. Keys are stored under KeyPrefix.
func (r *Registry) Store() limiter.Store { return r.store }

// setRedisReady tells the Registry whether Redis is ready; Options.Watch
// calls it on every change of the owner's connection state.
//
// The first time it is told ready, it builds ulule's Redis store, which loads
// two Lua scripts (bounded by the client's timeouts). If that fails, counting
// stays in memory and a check retries the build at most once a second.
//
// Once told not ready, no check touches Redis: all answer from memory at once.
// Told ready, checks go to Redis; a check that Redis cannot serve is answered from memory and reported to Options.OnRedisError, but the
// Registry stays on Redis until it is told otherwise.
func (r *Registry) setRedisReady(ready bool) {
	r.ready.Store(ready)
	r.mu.Lock()
	defer r.mu.Unlock()
	if ready && r.client != nil && r.rs.Load() == nil {
		r.buildLocked()
	}
	r.noteBackendLocked()
}

// Backend is "redis" while checks go to Redis and "memory" otherwise.
func (r *Registry) Backend() string {
	if r.ready.Load() && r.rs.Load() != nil {
		return BackendRedis
	}
	return BackendMemory
}

// Switches counts the moves between the Redis and memory backends.
func (r *Registry) Switches() uint64 { return r.switches.Load() }

// Stats are counters for metrics. All are totals since New.
type Stats struct {
	Backend     string // "redis" or "memory"
	Switches    uint64 // moves between backends
	Checks      uint64 // checks answered (Allow and the HTTP middleware)
	Rejections  uint64 // checks that were over their limit
	RedisErrors uint64 // checks that Redis failed while marked ready, answered from memory
}

// Stats returns the Registry's counters.
func (r *Registry) Stats() Stats {
	return Stats{
		Backend:     r.Backend(),
		Switches:    r.switches.Load(),
		Checks:      r.checks.Load(),
		Rejections:  r.rejections.Load(),
		RedisErrors: r.redisErrors.Load(),
	}
}

// redisStore returns the store to try first, or nil for memory.
func (r *Registry) redisStore() limiter.Store {
	if !r.ready.Load() {
		return nil
	}
	if s := r.rs.Load(); s != nil {
		return *s
	}
	if r.client == nil || !r.mu.TryLock() {
		return nil
	}
	defer r.mu.Unlock()
	if r.ready.Load() && r.rs.Load() == nil && time.Since(r.lastBuild) >= buildRetryEvery {
		r.buildLocked()
		r.noteBackendLocked()
	}
	if s := r.rs.Load(); s != nil && r.ready.Load() {
		return *s
	}
	return nil
}

// buildLocked builds ulule's Redis store; r.mu is held.
func (r *Registry) buildLocked() {
	r.lastBuild = time.Now()
	s, err := redisstore.NewStoreWithOptions(scriptClient{r.client}, limiter.StoreOptions{
		Prefix: strings.TrimSuffix(KeyPrefix, ":"),
	})
	if err != nil {
		// ulule's error carries a stack trace that slog would print in
		// full (%+v): log its message. A Redis that cannot be reached is
		// the monitor's to report; one that refuses the scripts is news.
		if !r.buildFailed {
			level := slog.LevelWarn
			if connerr.Down(err) {
				level = slog.LevelDebug
			}
			r.log.Log(context.Background(), level, "cannot load the rate limit scripts into Redis; counting stays in memory, per instance",
				"error", strings.ReplaceAll(err.Error(), "\n", " "))
		}
		r.buildFailed = true
		return
	}
	r.buildFailed = false
	r.rs.Store(&s)
}

// noteBackendLocked counts and logs a change of backend; r.mu is held.
func (r *Registry) noteBackendLocked() {
	now := r.Backend()
	if now == r.backend {
		return
	}
	r.backend = now
	r.switches.Add(1)
	if now == BackendRedis {
		r.mem.drop() // stale per-instance counts must not return at the next outage
		r.log.Debug("rate limiting is on Redis; limits are global again", "backend", now)
		return
	}
	r.log.Debug("rate limiting moved to memory while Redis is not ready; limits apply per instance",
		"backend", now)
}

// redisFailed records a check that Redis failed while marked ready.
func (r *Registry) redisFailed(err error) {
	r.redisErrors.Add(1)
	if r.onRedisError != nil {
		r.onRedisError(err)
	}
}

// Limiter returns a limiter of rate (ulule's format, e.g. "10-S") whose keys
// live under name: taskhost:ratelimit:<name>:<key>. Limiters of the same
// name share their counters, so give each use its own name.
func (r *Registry) Limiter(name, rate string) (*Limiter, error) {
	return r.newLimiter(name, rate, "ratelimit: limiter "+name)
}

// LimiterRate is Limiter for a rate given as a count and a period, such as
// limiter.Rate{Limit: 5, Period: 10 * time.Second}: any period, not only
// ulule's S, M, H and D. The limit must be at least 1 and the period positive.
func (r *Registry) LimiterRate(name string, rate limiter.Rate) (*Limiter, error) {
	if name == "" {
		return nil, fmt.Errorf("ratelimit: a limiter needs a name")
	}
	if rate.Limit < 1 || rate.Period <= 0 {
		return nil, fmt.Errorf("ratelimit: limiter %s: %d per %s is %w (at least 1 event per a positive period)", name, rate.Limit, rate.Period, ErrBadRate)
	}
	l := &Limiter{reg: r, name: name}
	l.rate.Store(&rate)
	return l, nil
}

func (r *Registry) newLimiter(name, rate, key string) (*Limiter, error) {
	if name == "" {
		return nil, fmt.Errorf("ratelimit: a limiter needs a name")
	}
	rt, err := parseRateAt(key, rate)
	if err != nil {
		return nil, err
	}
	l := &Limiter{reg: r, name: name}
	l.rate.Store(&rt)
	return l, nil
}

// Named returns the limiter configured as ratelimit.limits.<name>.
func (r *Registry) Named(name string) (*Limiter, error) {
	r.namedMu.RLock()
	defer r.namedMu.RUnlock()
	if l, ok := r.named[name]; ok {
		return l, nil
	}
	names := slices.Sorted(maps.Keys(r.named))
	return nil, fmt.Errorf("%w: %q (configured: %s)", ErrUnknownLimiter, name, strings.Join(names, ", "))
}

// SetLimits changes the named rates while limiters are in use, for a config
// reload: each name of limits that exists gets its new rate at once (the
// limiters that Named handed out follow it: the next check counts against
// it, in the current window), and a new name is added. A name absent from
// limits keeps its limiter and rate. Every rate is parsed first; a bad one
// is an error naming its key, ratelimit.limits.<name>, and changes nothing.
func (r *Registry) SetLimits(limits map[string]string) error {
	rates := make(map[string]limiter.Rate, len(limits))
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(limits)) {
		rt, err := parseRateAt("ratelimit.limits."+name, limits[name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rates[name] = rt
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.namedMu.Lock()
	defer r.namedMu.Unlock()
	for name, rt := range rates {
		if l, ok := r.named[name]; ok {
			l.rate.Store(&rt)
			continue
		}
		l := &Limiter{reg: r, name: name}
		l.rate.Store(&rt)
		r.named[name] = l
	}
	return nil
}

// get is one check through the fallback store, with the exact window end.
func (r *Registry) get(ctx context.Context, key string, rate limiter.Rate) (limiter.Context, time.Time, error) {
	var n resetNote
	c, err := r.store.Get(withNote(ctx, &n), key, rate)
	if err != nil {
		return c, time.Time{}, err
	}
	if n.at.IsZero() {
		n.at = time.Unix(c.Reset, 0)
	}
	return c, n.at, nil
}
