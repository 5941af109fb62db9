package metrics

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// The Register funcs below read state that their callers keep in memory;
// the funcs they take are called on every scrape and must not block.

// RegisterPoolStats exports a go-redis pool's stats under pool=<name>. Call
// it once per pool, e.g. "shared" and "queue".
func (m *Metrics) RegisterPoolStats(pool string, stats func() *redis.PoolStats) error {
	read := func(f func(*redis.PoolStats) uint32) func() float64 {
		return func() float64 {
			if s := stats(); s != nil {
				return float64(f(s))
			}
			return 0
		}
	}
	labels := prometheus.Labels{"pool": pool}
	return m.register("pool "+pool,
		counterFunc("redis_pool_hits_total", "Times a free connection was found in the pool.", labels,
			read(func(s *redis.PoolStats) uint32 { return s.Hits })),
		counterFunc("redis_pool_misses_total", "Times no free connection was found in the pool and one was dialled.", labels,
			read(func(s *redis.PoolStats) uint32 { return s.Misses })),
		counterFunc("redis_pool_timeouts_total", "Times waiting for a pool connection timed out.", labels,
			read(func(s *redis.PoolStats) uint32 { return s.Timeouts })),
		gaugeFunc("redis_pool_connections", "Open connections in the pool.", labels,
			read(func(s *redis.PoolStats) uint32 { return s.TotalConns })),
		gaugeFunc("redis_pool_idle_connections", "Idle connections in the pool.", labels,
			read(func(s *redis.PoolStats) uint32 { return s.IdleConns })),
	)
}

// RegisterFallback exports whether component (cache, ratelimit or outbox)
// serves from its fallback, and how many times it has switched to or from it.
func (m *Metrics) RegisterFallback(component string, active func() bool, switches func() uint64) error {
	labels := prometheus.Labels{"component": component}
	return m.register("fallback "+component,
		gaugeFunc("fallback_active", "1 while the component serves from its fallback, else 0.", labels,
			func() float64 { return b2f(active()) }),
		counterFunc("fallback_switches_total", "Times the component switched to or from its fallback.", labels,
			func() float64 { return float64(switches()) }),
	)
}

// RegisterCacheStats exports the cache's hits and misses.
func (m *Metrics) RegisterCacheStats(stats func() (hits, misses uint64)) error {
	return m.register("cache stats",
		counterFunc("cache_hits_total", "Cache reads that found a value.", nil,
			func() float64 { h, _ := stats(); return float64(h) }),
		counterFunc("cache_misses_total", "Cache reads that found no value.", nil,
			func() float64 { _, mi := stats(); return float64(mi) }),
	)
}

// RegisterLimiterStats exports the rate limiter's checks and rejections.
func (m *Metrics) RegisterLimiterStats(stats func() (checks, rejections uint64)) error {
	return m.register("limiter stats",
		counterFunc("ratelimit_checks_total", "Rate limiter checks.", nil,
			func() float64 { c, _ := stats(); return float64(c) }),
		counterFunc("ratelimit_rejections_total", "Rate limiter checks that were over the limit.", nil,
			func() float64 { _, r := stats(); return float64(r) }),
	)
}

// RegisterOutbox exports the outbox's depth and the age of its oldest task
// (zero when it is empty).
func (m *Metrics) RegisterOutbox(depth func() int, oldest func() time.Duration) error {
	return m.register("outbox",
		gaugeFunc("outbox_depth", "Tasks held in the outbox.", nil,
			func() float64 { return float64(depth()) }),
		gaugeFunc("outbox_oldest_pending_age_seconds", "Age of the oldest task in the outbox; 0 when it is empty.", nil,
			func() float64 { return oldest().Seconds() }),
	)
}

// register registers all of cs or none of them.
func (m *Metrics) register(what string, cs ...prometheus.Collector) error {
	for i, c := range cs {
		if err := m.reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				m.reg.Unregister(done)
			}
			return fmt.Errorf("metrics: register %s: %w", what, err)
		}
	}
	return nil
}

func counterFunc(name, help string, labels prometheus.Labels, f func() float64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help, ConstLabels: labels}, f)
}

func gaugeFunc(name, help string, labels prometheus.Labels, f func() float64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help, ConstLabels: labels}, f)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
