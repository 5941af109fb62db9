package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/healthcheck"
	"github.com/taskhost/taskhost/internal/redisconn"
)

// errNotReady answers Redis sections of the report at once while the
// monitor says Redis is not ready, instead of waiting for a timeout.
var errNotReady = errors.New("redis is not ready")

// registerObservability registers the metrics that read runtime state.
func (r *Runtime) registerObservability() error {
	m := r.metrics
	errs := []error{
		m.RegisterPoolStats("app", r.rdb.PoolStats),
		m.RegisterPoolStats("queue", r.qrdb.PoolStats),
		m.RegisterFallback("cache", func() bool { return r.cache.Backend() == cache.BackendMemory }, r.cache.Switches),
		m.RegisterFallback("ratelimit", func() bool { return r.limits.Backend() == "memory" }, r.limits.Switches),
		m.RegisterCacheStats(func() (uint64, uint64) { s := r.cache.Stats(); return s.Hits, s.Misses }),
		m.RegisterLimiterStats(func() (uint64, uint64) { s := r.limits.Stats(); return s.Checks, s.Rejections }),
		m.RegisterOutbox(func() int { n, _ := r.client.Depth(); return n }, func() time.Duration {
			if t := r.client.Oldest(); !t.IsZero() {
				return time.Since(t)
			}
			return 0
		}),
		m.RegisterQueues(r.queue.inspector, r.cfg.Health.Timeout/2),
	}
	return errors.Join(errs...)
}

// whenReady guards a Redis-reading report section.
func whenReady[T any](r *Runtime, fn func(context.Context) (T, error)) func(context.Context) (T, error) {
	return func(ctx context.Context) (T, error) {
		if !r.monitor.Ready() {
			var zero T
			return zero, errNotReady
		}
		return fn(ctx)
	}
}

// healthHandler builds the admin handler: /livez, /readyz, /healthz, /metrics.
func (r *Runtime) healthHandler() http.Handler {
	detail, _ := healthcheck.ParseDetail(r.cfg.Health.Detail)
	return healthcheck.NewHandler(healthcheck.Options{
		Registry: r.checks,
		Source: healthcheck.Source{
			Connection: func(context.Context) (healthcheck.Connection, error) {
				c := healthcheck.Connection{
					State:  r.monitor.State().String(),
					Since:  r.monitor.Since(),
					Mode:   r.cfg.Redis.Mode,
					Target: redisconn.Describe(r.cfg.Redis),
				}
				if at, ok := r.monitor.EmptyRestart(); ok {
					c.CameBackEmptyAt = &at
				}
				return c, nil
			},
			Ping:      whenReady(r, healthcheck.PingFunc(r.rdb)),
			Redis:     whenReady(r, healthcheck.InfoFunc(r.rdb)),
			Queues:    whenReady(r, healthcheck.QueuesFunc(r.queue.inspector)),
			Fallbacks: func(context.Context) ([]healthcheck.Fallback, error) { return r.fallbacks(), nil },
		},
		Ready:     r.ready,
		Gatherer:  r.metrics.Gatherer(),
		Timeout:   r.cfg.Health.Timeout,
		Detail:    detail,
		Version:   r.version,
		StartedAt: r.born,
		Logger:    r.log,
	})
}

func (r *Runtime) fallbacks() []healthcheck.Fallback {
	tasks, _ := r.client.Depth()
	return []healthcheck.Fallback{
		{Component: "cache", Active: r.cache.Backend() == cache.BackendMemory},
		{Component: "ratelimit", Active: r.limits.Backend() == "memory"},
		{Component: "outbox", Active: tasks > 0, Depth: int64(tasks)},
	}
}

// ready is /readyz: Redis is ready and the queue server is fetching.
func (r *Runtime) ready() (bool, string) {
	switch {
	case !r.monitor.Ready():
		return false, "redis is " + r.monitor.State().String()
	case !r.fetching.Load():
		return false, "queue server is not fetching tasks"
	}
	return true, "ok"
}

// startHTTP listens on health.addr before returning, so a taken port fails
// Start, then serves in the background.
func (r *Runtime) startHTTP() error {
	ln, err := net.Listen("tcp", r.cfg.Health.Addr)
	if err != nil {
		return fmt.Errorf("health.addr: listen on %s: %w", r.cfg.Health.Addr, err)
	}
	r.httpLn = ln
	r.httpSrv = healthcheck.NewServer(r.cfg.Health.Addr, r.adminMux())
	go func() {
		if err := r.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("health server failed", "component", "health", "error", err)
		}
	}()
	return nil
}

// adminMux is the handler of the health listener.
func (r *Runtime) adminMux() http.Handler { return r.healthHandler() }

func (r *Runtime) stopHTTP(ctx context.Context) {
	if r.httpSrv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.httpSrv.Shutdown(ctx); err != nil {
		_ = r.httpSrv.Close()
	}
}

// HealthAddr is the address the health server listens on, once started.
func (r *Runtime) HealthAddr() string { return r.healthAddr() }
