package pluginstest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/healthcheck"
	"github.com/taskhost/taskhost/internal/health"
	"github.com/taskhost/taskhost/internal/outbox"
	"github.com/taskhost/taskhost/internal/pluginhost"
	"github.com/taskhost/taskhost/internal/tasklog"
	"github.com/taskhost/taskhost/internal/taskrun"
	"github.com/taskhost/taskhost/internal/testlog"
	"github.com/taskhost/taskhost/plugins"
	"github.com/taskhost/taskhost/ratelimit"
)

// Options configures a Host. The zero value is usable.
type Options struct {
	// ID is the plugin's ID, used in the logger and in config error keys
	// (plugins.<id>.<key>). Default "test".
	ID string
	// Config is the plugin's section, what plugins.<id> holds in
	// config.yaml, e.g. map[string]any{"timeout": "2s"}. Nil means the
	// plugin is enabled with no settings.
	Config map[string]any
	// Limits are the worker's named limiters, ratelimit.limits, that
	// NamedLimiter hands out, e.g. map[string]string{"smtp": "10-S"}.
	Limits map[string]string
	// Cache replaces what Host.Cache returns. Default: the host's cache on
	// its Redis, which falls back to memory while Redis is down.
	Cache cache.Store
	// Limiter replaces what Host.Limiter returns, built from the
	// limiter's name as the runtime keys it ("<id>.<name>") and its rate.
	// Default: the host's limiters on its Redis, which count in memory
	// while Redis is down.
	Limiter func(name, rate string) (*ratelimit.Limiter, error)
	// Logger is the plugin's logger. Default: a text logger at debug level
	// whose output Logs returns.
	Logger *slog.Logger
	// Enqueue replaces Host.Enqueue. Default: taskhost's client on the
	// host's Redis, which holds tasks in its outbox while Redis is down;
	// every task is also recorded (see Enqueued).
	Enqueue func(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
	// CheckTimeout bounds RunCheck for checks without a Timeout. Default 1s,
	// the health listener's default.
	CheckTimeout time.Duration
	// Redis is what Host.Redis returns. Default: a client of the host's
	// in-process Redis, which RedisDown stops and RedisUp restarts (it has
	// no fallback, as in the worker). Pass a client of a real redis-server
	// to test Redis features that the in-process Redis lacks.
	Redis redis.UniversalClient
}

// Schedule is one periodic task that a plugin registered.
type Schedule struct {
	EntryID string
	Spec    string
	Task    *asynq.Task
	Opts    []asynq.Option // with the task type's defaults, as the scheduler gets them
}

// Host is a plugins.Host for tests: the runtime's own host implementation
// (so it refuses what the runtime refuses), served from an in-process Redis
// that a test can take down and bring back. It is safe for concurrent use.
type Host struct {
	plugins.Host // the real host of the plugin

	t    testing.TB
	opts Options
	log  *slog.Logger
	logs *lockedBuffer
	mux  *asynq.ServeMux
	set  *pluginhost.Set
	reg  *health.Registry // refuses what the runtime's refuses
	prom *prometheus.Registry

	redis     *miniredis.Miniredis
	rdb       *redis.Client
	cache     *cache.Cache
	limits    *ratelimit.Registry
	outbox    *outbox.Client
	inspector *asynq.Inspector
	up        atomic.Bool
	board     readyBoard
	switching sync.Mutex // serialises RedisDown and RedisUp

	runnerOnce sync.Once
	runner     *taskrun.Runner
	runnerErr  error

	mu        sync.Mutex
	schedules []Schedule
	checks    []healthcheck.Check // as the plugin named them, in order
	enqueued  []*asynq.Task
}

var _ plugins.Host = (*Host)(nil)

// NewHost returns a Host for one plugin, with Redis up. Everything it
// starts stops at the end of the test.
func NewHost(t testing.TB, opts Options) *Host {
	t.Helper()
	if opts.ID == "" {
		opts.ID = "test"
	}
	if err := cache.ValidateNamespace(opts.ID); err != nil {
		t.Fatalf("pluginstest: plugin ID %q is not a cache namespace: %v", opts.ID, err)
	}
	if opts.CheckTimeout <= 0 {
		opts.CheckTimeout = time.Second
	}
	h := &Host{t: t, opts: opts, mux: asynq.NewServeMux(), reg: health.NewRegistry(opts.CheckTimeout), prom: prometheus.NewRegistry()}
	h.log = opts.Logger
	if h.log == nil {
		h.logs = &lockedBuffer{}
		h.log = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		t.Cleanup(func() {
			if t.Failed() && h.logs.Len() > 0 {
				t.Logf("plugin %s logged:\n%s", opts.ID, h.logs.String())
			}
		})
	}
	h.startRedis()

	limiter := opts.Limiter
	if limiter == nil {
		limiter = h.limits.Limiter
	}
	h.set = pluginhost.New(pluginhost.Deps{
		Logger:   h.log,
		Sections: map[string]map[string]any{opts.ID: opts.Config},
		Mux:      h.mux,
		Schedule: h.schedule,
		Cache: func(ns string) cache.Store {
			if opts.Cache != nil {
				return opts.Cache
			}
			return h.cache.Namespace(ns)
		},
		Limiter:      limiter,
		LimiterRate:  h.limits.LimiterRate,
		NamedLimiter: h.limits.Named,
		Metrics:      h.prom,
		AddCheck:     h.addCheck,
		Enqueue:      h.enqueue,
		Redis:        h.redisClient(),
	})
	h.Host = h.set.Host(opts.ID)
	return h
}

// redisClient is what Host.Redis returns: Options.Redis, or the host's own
// Redis, which RedisDown stops.
func (h *Host) redisClient() redis.UniversalClient {
	if h.opts.Redis != nil {
		return h.opts.Redis
	}
	return h.rdb
}

// startRedis starts the host's Redis and what runs on it, all marked up.
func (h *Host) startRedis() {
	t := h.t
	h.redis = miniredis.NewMiniRedis()
	h.redis.ClockTTL(true) // keys expire on the wall clock, as in Redis
	if err := h.redis.StartAddr("127.0.0.1:0"); err != nil {
		t.Fatalf("pluginstest: start redis: %v", err)
	}
	// Timeouts bound a call to a stopped Redis, as the worker's do.
	h.rdb = redis.NewClient(&redis.Options{
		Addr: h.redis.Addr(), MaxRetries: -1, DialTimeout: 500 * time.Millisecond,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
	})
	h.up.Store(true)
	h.cache = cache.New(h.rdb, cache.Options{Logger: h.log, Watch: h.board.watch})
	limits, err := ratelimit.New(h.rdb, ratelimit.Options{Limits: h.opts.Limits, Logger: h.log, Watch: h.board.watch})
	if err != nil {
		t.Fatalf("pluginstest: Options.Limits: %v", err)
	}
	h.limits = limits
	h.outbox, err = outbox.New(asynq.NewClientFromRedisClient(h.rdb), h.up.Load, outbox.Options{
		Logger: h.log, DrainRate: math.Inf(1), CheckInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("pluginstest: outbox: %v", err)
	}
	h.inspector = asynq.NewInspectorFromRedisClient(h.rdb)
	h.setUp(true)
	t.Cleanup(func() {
		_ = h.outbox.Close()
		_ = h.limits.Close()
		h.cache.Close()
		_ = h.rdb.Close()
		h.redis.Close()
		if h.runner != nil {
			h.runner.Close()
		}
	})
}

// setUp tells the cache, the limiters and the outbox whether Redis is up,
// as the worker's connection monitor does.
func (h *Host) setUp(up bool) {
	h.up.Store(up)
	h.board.set(up)
}

// readyBoard is the Options.Watch of the host's cache and limiters: it
// tells each the state at once, and again on every switch.
type readyBoard struct {
	mu  sync.Mutex
	up  bool
	fns []func(ready bool)
}

func (b *readyBoard) watch(setReady func(ready bool)) (stop func()) {
	b.mu.Lock()
	b.fns = append(b.fns, setReady)
	up := b.up
	b.mu.Unlock()
	setReady(up)
	return func() {}
}

func (b *readyBoard) set(up bool) {
	b.mu.Lock()
	b.up = up
	fns := slices.Clone(b.fns)
	b.mu.Unlock()
	for _, f := range fns {
		f(up)
	}
}

// RedisDown takes the host's Redis down: the server stops listening, so a
// command fails as it would in an outage, and the cache, the limiters and
// Enqueue switch to their fallbacks, as the worker's do when its
// connection monitor reports Redis down. The cache then reads and writes
// memory, limits count in memory (per worker), and enqueued tasks wait in
// the outbox (see Held). Handlers still run: a task a worker has fetched
// runs on through an outage.
func (h *Host) RedisDown() {
	h.switching.Lock()
	defer h.switching.Unlock()
	if !h.up.Load() {
		return
	}
	h.setUp(false)
	h.redis.Close()
	h.log.Info("pluginstest: redis down", "component", "pluginstest")
}

// RedisUp brings the host's Redis back with its data, as after a restart
// with persistence: the cache drops its memory entries and reads Redis
// again, limits count in Redis again, and the outbox delivers the tasks it
// held before RedisUp returns.
func (h *Host) RedisUp() {
	h.t.Helper()
	h.switching.Lock()
	defer h.switching.Unlock()
	if h.up.Load() {
		return
	}
	if err := h.redis.Restart(); err != nil {
		h.t.Fatalf("pluginstest: restart redis: %v", err)
	}
	h.setUp(true)
	h.log.Info("pluginstest: redis up", "component", "pluginstest")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.outbox.Flush(ctx); err != nil {
		h.t.Fatalf("pluginstest: deliver the outbox: %v", err)
	}
}

// RedisIsUp reports whether the host's Redis is up.
func (h *Host) RedisIsUp() bool { return h.up.Load() }

// Held is how many enqueued tasks wait in the outbox for Redis.
func (h *Host) Held() int {
	n, _ := h.outbox.Depth()
	return n
}

// Inspector reads the queues on the host's Redis, where Enqueue delivers
// tasks (while Redis is up).
func (h *Host) Inspector() *asynq.Inspector { return h.inspector }

// Gatherer gathers what the plugin registered on Host.Metrics, for
// prometheus/testutil.
func (h *Host) Gatherer() prometheus.Gatherer { return h.prom }

// Provision runs p's Provision and Validate on h, in the runtime's order.
// When either fails, or a task type was registered twice, it runs p's
// Cleanup and returns the error. After a success, Cleanup runs at the end of
// the test.
func (h *Host) Provision(ctx context.Context, p plugins.Plugin) error {
	h.t.Helper()
	if err := h.set.Provision(ctx, h.opts.ID, p); err != nil {
		return err
	}
	if c, ok := p.(plugins.CleanerUpper); ok {
		h.t.Cleanup(func() {
			if err := c.Cleanup(); err != nil {
				h.t.Errorf("plugin %s: cleanup: %v", h.opts.ID, err)
			}
		})
	}
	return nil
}

// schedule records a periodic task under the entry name the runtime would
// give it; the host has checked it as the runtime's scheduler does. The task
// is never enqueued.
func (h *Host) schedule(name, cronspec string, task *asynq.Task, opts ...asynq.Option) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.schedules = append(h.schedules, Schedule{EntryID: name, Spec: cronspec, Task: task, Opts: opts})
	return nil
}

// addCheck records a check that the registry accepted, under the name the
// plugin gave it.
func (h *Host) addCheck(c healthcheck.Check) error {
	if err := h.reg.Add(c); err != nil {
		return err
	}
	c.Name = strings.TrimPrefix(c.Name, h.opts.ID+".")
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks = append(h.checks, c)
	return nil
}

// enqueue records the task, then calls Options.Enqueue or the outbox.
func (h *Host) enqueue(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	h.mu.Lock()
	h.enqueued = append(h.enqueued, task)
	h.mu.Unlock()
	if h.opts.Enqueue != nil {
		return h.opts.Enqueue(ctx, task, opts...)
	}
	return h.outbox.EnqueueContext(ctx, task, opts...)
}

// ErrNoHandler is returned by Run for a task type without a handler.
var ErrNoHandler = errors.New("pluginstest: no handler for the task type")

// Run runs the handler registered for taskType with payload, as the worker
// would for a task of that type, and returns its error. See RunTask.
func (h *Host) Run(ctx context.Context, taskType string, payload []byte, opts ...asynq.Option) error {
	return h.RunTask(ctx, asynq.NewTask(taskType, payload), opts...)
}

// RunTask runs the handler that the worker would pick for task, through
// asynq's own processor, so that the handler's context is what asynq gives
// it in a worker: asynq.GetTaskID, GetRetryCount, GetMaxRetry and
// GetQueueName answer, and its deadline is the task's timeout. opts are
// enqueue options over the task type's defaults, e.g. asynq.TaskID("t-1"),
// asynq.MaxRetry(5), and Retried(n) for a task that has been retried n
// times already. The handler runs on the calling goroutine: a panic is not
// recovered. The run is logged as the worker logs it ("task done" or
// "task failed"), with what the handler added with plugins.AnnotateTask.
//
// Tasks run on a queue of their own, which RedisDown does not affect: a
// task that a worker has fetched runs on through an outage.
func (h *Host) RunTask(ctx context.Context, task *asynq.Task, opts ...asynq.Option) error {
	if _, pattern := h.mux.Handler(task); pattern == "" {
		return fmt.Errorf("%w: %q", ErrNoHandler, task.Type())
	}
	h.runnerOnce.Do(func() { h.runner, h.runnerErr = taskrun.New() })
	if h.runnerErr != nil {
		return fmt.Errorf("pluginstest: %w", h.runnerErr)
	}
	return h.runner.Run(ctx, task, h.set.WithDefaults(task, opts), func(ctx context.Context, t *asynq.Task) error {
		ctx, note := tasklog.With(ctx, t.Type())
		start := time.Now()
		err := h.mux.ProcessTask(ctx, t)
		h.logTask(ctx, t, note, err, time.Since(start))
		return err
	})
}

// Retried is an option for Run and RunTask: the task has been retried n
// times already, as asynq.GetRetryCount reports. It cannot be more than the
// task's max retry.
func Retried(n int) asynq.Option { return taskrun.Retried(n) }

// logTask logs a run the way the worker's task middleware does.
func (h *Host) logTask(ctx context.Context, t *asynq.Task, note *tasklog.Note, err error, d time.Duration) {
	id, _ := asynq.GetTaskID(ctx)
	queue, _ := asynq.GetQueueName(ctx)
	retry, _ := asynq.GetRetryCount(ctx)
	attrs := []slog.Attr{slog.String("component", "task"), slog.String("task_id", id), slog.String("type", t.Type()),
		slog.String("queue", queue), slog.Int("retry", retry), slog.Duration("duration", d)}
	attrs = append(attrs, note.Attrs()...)
	level, msg := slog.LevelDebug, "task done" // as the worker: a success at debug
	if err != nil {
		level, msg = slog.LevelWarn, "task failed"
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	h.log.LogAttrs(ctx, level, msg, attrs...)
}

// TaskTypes returns the registered task types, sorted.
func (h *Host) TaskTypes() []string { return h.set.TaskTypes() }

// Defaults returns the default options of taskType that the plugin set
// with TaskDefaults, as Enqueue, Schedule and `worker enqueue` apply them.
func (h *Host) Defaults(taskType string) []asynq.Option { return h.set.Defaults(taskType) }

// Schedules returns the registered periodic tasks, in registration order.
func (h *Host) Schedules() []Schedule {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.schedules)
}

// Checks returns the added health checks, in order.
func (h *Host) Checks() []healthcheck.Check {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.checks)
}

// ErrNoCheck is returned by RunCheck for a name that was not added.
var ErrNoCheck = errors.New("pluginstest: no such check")

// RunCheck runs the check named name with its timeout (or
// Options.CheckTimeout) and returns its result.
func (h *Host) RunCheck(ctx context.Context, name string) error {
	h.mu.Lock()
	i := slices.IndexFunc(h.checks, func(c healthcheck.Check) bool { return c.Name == name })
	var c healthcheck.Check
	if i >= 0 {
		c = h.checks[i]
	}
	h.mu.Unlock()
	if i < 0 {
		return fmt.Errorf("%w: %q", ErrNoCheck, name)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = h.opts.CheckTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// Like the health registry: a check that ignores ctx still
		// reports a timeout on time.
		return fmt.Errorf("check %q: %w", name, ctx.Err())
	}
}

// Enqueued returns every task given to Enqueue, in order, whether it went
// to Redis, waits in the outbox, or failed.
func (h *Host) Enqueued() []*asynq.Task {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.enqueued)
}

// Logs returns what the plugin logged so far, as slog text lines, with the
// host's own lines: each task run, and the switches of RedisDown and
// RedisUp. It is empty when Options.Logger was given.
func (h *Host) Logs() string {
	if h.logs == nil {
		return ""
	}
	return h.logs.String()
}

type lockedBuffer = testlog.Buffer
