package taskhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/healthcheck"
	"github.com/taskhost/taskhost/internal/connerr"
	"github.com/taskhost/taskhost/internal/health"
	"github.com/taskhost/taskhost/internal/redisconn"
	"github.com/taskhost/taskhost/internal/reload"
	"github.com/taskhost/taskhost/ratelimit"
)

// errNotReady answers Redis sections of the report at once while the
// monitor says Redis is not ready, instead of waiting for a timeout.
var errNotReady = errors.New("redis is not ready")

// outboxCheck is the runtime's own health check of the outbox's capacity.
const outboxCheck = "runtime.outbox"

// outboxWarnRatio is the share of outbox.max_tasks or outbox.max_bytes past
// which the outbox check fails, before enqueues start failing with ErrOutboxFull.
const outboxWarnRatio = 0.9

// registerObservability registers the metrics that read runtime state, the
// runtime's health checks, and the hooks and subscription the report reads.
// It runs in New, before the monitor starts.
func (r *Runtime) registerObservability() error {
	o := &observer{log: r.log.With("component", "redis"), ready: r.monitor.Ready}
	r.obs = o
	r.rdb.AddHook(connHook{o})
	r.probe.AddHook(connHook{o}) // the monitor's probes dial the current master too
	r.qrdb.AddHook(connHook{o})  // asynq's refusals (NOPERM) show there first
	// closeConnection runs r.unsub, also after a Stop without Start.
	r.unsub = append(r.unsub, r.monitor.Subscribe(o.onState))

	m := r.metrics
	errs := []error{
		m.RegisterPoolStats("app", r.rdb.PoolStats),
		m.RegisterPoolStats("queue", r.qrdb.PoolStats),
		m.RegisterFallback("cache", r.cacheFallback, r.cache.Switches),
		m.RegisterFallback("ratelimit", r.limitFallback, r.limits.Switches),
		m.RegisterCacheStats(func() (uint64, uint64) { s := r.cache.Stats(); return s.Hits, s.Misses }),
		m.RegisterLimiterStats(func() (uint64, uint64) { s := r.limits.Stats(); return s.Checks, s.Rejections }),
		m.RegisterOutbox(func() int { n, _ := r.client.Depth(); return n }, func() time.Duration {
			if t := r.client.Oldest(); !t.IsZero() {
				return time.Since(t)
			}
			return 0
		}),
		m.RegisterQueues(r.queue.inspector, r.cfg.Health.Timeout/2),
		m.RegisterSchedules(r.scheduleStats),
		r.checks.Add(healthcheck.Check{Name: outboxCheck, Run: r.checkOutbox}),
		r.registerHandlersCheck(),
		r.registerQuarantine(),
	}
	return errors.Join(errs...)
}

func (r *Runtime) cacheFallback() bool { return r.cache.Backend() == cache.BackendMemory }
func (r *Runtime) limitFallback() bool { return r.limits.Backend() == ratelimit.BackendMemory }

// checkOutbox fails when the outbox is nearly full: past outboxWarnRatio of
// outbox.max_tasks or outbox.max_bytes. It reads memory only.
func (r *Runtime) checkOutbox(context.Context) error {
	tasks, bytes := r.client.Depth()
	bound := r.cfg.Outbox
	if bound.MaxTasks > 0 && float64(tasks) >= outboxWarnRatio*float64(bound.MaxTasks) {
		return fmt.Errorf("outbox holds %d tasks of outbox.max_tasks %d", tasks, bound.MaxTasks)
	}
	if bound.MaxBytes > 0 && float64(bytes) >= outboxWarnRatio*float64(bound.MaxBytes) {
		return fmt.Errorf("outbox holds %d bytes of outbox.max_bytes %d", bytes, bound.MaxBytes)
	}
	return nil
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
	detail, _ := health.ParseDetail(r.cfg.Health.Detail)
	return health.NewHandler(health.Options{
		Registry: r.checks,
		Source: health.Source{
			Connection: func(context.Context) (health.Connection, error) { return r.connection(), nil },
			Ping:       whenReady(r, health.PingFunc(r.rdb)),
			Redis:      whenReady(r, health.InfoFunc(r.rdb)),
			Queues:     whenReady(r, health.QueuesFunc(r.queue.inspector)),
			Fallbacks:  func(context.Context) ([]health.Fallback, error) { return r.fallbacks(), nil },
			Fleet:      whenReady(r, r.fleet),
			Schedules:  r.schedules,
			Warnings:   r.quarantineWarnings,
			Config:     func(context.Context) (health.ConfigInfo, error) { return r.rl.info(), nil },
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

// connection is the report's connection section, from memory only.
func (r *Runtime) connection() health.Connection {
	c := health.Connection{
		State:  r.monitor.State().String(),
		Since:  r.monitor.Since(),
		Mode:   r.cfg.Redis.Mode,
		Target: redisconn.Describe(r.cfg.Redis.conn()),
	}
	if c.Mode == "" {
		c.Mode = ModeStandalone
	}
	remote, lastErr, misconfigured := r.observer().conn()
	if c.Mode == ModeSentinel {
		c.Master = remote
	}
	if c.State != redisconn.Ready.String() || misconfigured {
		c.LastError = lastErr
	}
	if at, ok := r.monitor.EmptyRestart(); ok {
		c.CameBackEmptyAt = &at
	}
	return c
}

// fallbacks is the report's fallbacks section. The cache and the limiter
// switch together, on the monitor's ready transitions; the outbox is active
// while it holds tasks, since its oldest one. The cache and the limiter do
// not report how much they hold in memory, so their depth is 0.
func (r *Runtime) fallbacks() []health.Fallback {
	since := r.observer().switched()
	tasks, _ := r.client.Depth()
	out := []health.Fallback{
		{Component: "cache", Active: r.cacheFallback(), Since: since},
		{Component: "ratelimit", Active: r.limitFallback(), Since: since},
		{Component: "outbox", Active: tasks > 0, Depth: int64(tasks)},
	}
	if t := r.client.Oldest(); !t.IsZero() {
		out[2].Since = &t
	}
	return out
}

// ready is /readyz: Redis is ready and the queue server is fetching. The
// reason is empty when ready.
func (r *Runtime) ready() (bool, string) {
	switch {
	case !r.monitor.Ready():
		return false, "redis is " + r.monitor.State().String()
	case !r.fetching.Load():
		return false, "queue server is not fetching tasks"
	}
	return true, ""
}

// observer returns r's observer.
func (r *Runtime) observer() *observer { return r.obs }

// observer keeps what the report shows that no component keeps: the latest
// connection error and address, and when the fallbacks last switched.
type observer struct {
	log   *slog.Logger
	ready func() bool

	mu       sync.Mutex
	remote   string    // address of the last connection dialled on the app pool
	lastErr  string    // latest network error or refusal (connerr.Reportable)
	misconf  time.Time // when lastErr was a refusal that connerr.Misconfigured names
	told     map[string]bool
	switchAt time.Time // last move into or out of ready
}

// misconfiguredShown is how long a refusal such as NOPERM stays in the
// report's last_error while Redis is otherwise ready.
const misconfiguredShown = time.Minute

func (o *observer) conn() (remote, lastErr string, misconfigured bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.remote, o.lastErr, !o.misconf.IsZero() && time.Since(o.misconf) < misconfiguredShown
}

func (o *observer) switched() *time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.switchAt.IsZero() {
		return nil
	}
	t := o.switchAt
	return &t
}

// onState records the moves into and out of ready, where the cache and the
// limiter switch backends.
func (o *observer) onState(from, to redisconn.State) {
	if (from == redisconn.Ready) == (to == redisconn.Ready) || to == redisconn.Closed {
		return
	}
	o.mu.Lock()
	o.switchAt = time.Now()
	o.mu.Unlock()
}

func (o *observer) dialed(remote string) {
	o.mu.Lock()
	o.remote = remote
	o.mu.Unlock()
}

func (o *observer) failed(err error) {
	msg := health.Redact(err.Error())
	problem := connerr.Misconfigured(err)
	o.mu.Lock()
	o.lastErr = msg
	o.misconf = time.Time{}
	tell := false
	if problem != "" {
		o.misconf = time.Now()
		// The monitor logs what its probe meets; a refusal of other
		// commands while the probe answers is logged here, once.
		if tell = !o.told[problem] && o.ready != nil && o.ready(); tell {
			if o.told == nil {
				o.told = map[string]bool{}
			}
			o.told[problem] = true
		}
	}
	o.mu.Unlock()
	if tell && o.log != nil {
		o.log.Error(connerr.MisconfiguredHint(problem), "problem", problem, "reason", msg)
	}
}

// connHook is a go-redis hook on the app pool that tells the observer each
// dialled address and each network error. In sentinel mode every dial goes
// to the current master, so the last address dialled is the master. It
// takes a lock only on a dial or a network error.
type connHook struct{ o *observer }

var _ redis.Hook = connHook{}

func (h connHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cn, err := next(ctx, network, addr)
		switch {
		case err == nil:
			h.o.dialed(cn.RemoteAddr().String())
		case connerr.Reportable(err):
			h.o.failed(err)
		}
		return cn, err
	}
}

func (h connHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err != nil && connerr.Reportable(err) {
			h.o.failed(err)
		}
		return err
	}
}

func (h connHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if err != nil && connerr.Reportable(err) {
			h.o.failed(err)
		}
		return err
	}
}

// startHTTP listens on health.addr before returning, so a taken port fails
// Start, then serves in the background.
func (r *Runtime) startHTTP() error {
	mux, err := r.adminMux()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", r.cfg.Health.Addr)
	if err != nil {
		return fmt.Errorf("health.addr: listen on %s: %w", r.cfg.Health.Addr, err)
	}
	r.httpLn = ln
	r.httpSrv = health.NewServer(r.cfg.Health.Addr, mux)
	r.httpSrv.ErrorLog = slog.NewLogLogger(r.log.With("component", "health").Handler(), slog.LevelWarn)
	go func() {
		if err := r.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("health server failed", "component", "health", "error", err)
		}
	}()
	return nil
}

// WorkerHeader is set on every answer of a worker's health listener, so
// that `worker health` can tell a taskhost worker from another process that
// listens on the address. Its value is the worker's version.
const WorkerHeader = "X-Taskhost-Worker"

// adminMux is the handler of the health listener: the health endpoints, and
// the dashboard at /ui/ when it has no listener of its own.
func (r *Runtime) adminMux() (http.Handler, error) {
	mux := http.NewServeMux()
	mux.Handle("/", r.healthHandler())
	mux.Handle(reload.Path, r.reloadHandler())
	r.mountPprof(mux)
	if err := r.mountUI(mux); err != nil {
		return nil, err
	}
	version := r.version
	if version == "" {
		version = "unknown"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set(WorkerHeader, version)
		mux.ServeHTTP(w, req)
	}), nil
}

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
