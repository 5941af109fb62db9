package pluginstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/healthcheck"
	"github.com/taskhost/taskhost/internal/health"
	"github.com/taskhost/taskhost/internal/pluginhost"
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
	// Cache is what Host.Cache returns. Default: a namespace of a fresh
	// cache.NewMemory store with its default bounds.
	Cache cache.Store
	// Limiter builds what Host.Limiter returns, from the limiter's name as
	// the runtime keys it ("<id>.<name>") and its rate. Default: the
	// Limiter method of a memory-only ratelimit.Registry of this Host, so
	// rates count per Host as they would per worker while Redis is down.
	Limiter func(name, rate string) (*ratelimit.Limiter, error)
	// Logger is the plugin's logger. Default: a text logger at debug level
	// whose output Logs returns.
	Logger *slog.Logger
	// Enqueue serves Host.Enqueue. Default: record the task (see Enqueued)
	// and return its info in the pending state.
	Enqueue func(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
	// CheckTimeout bounds RunCheck for checks without a Timeout. Default 1s,
	// the health listener's default.
	CheckTimeout time.Duration
	// Redis is what Host.Redis returns. Default: a client of a Redis that
	// is down, whose every call fails at once with redis.ErrClosed, so that
	// a test sees how the plugin copes without Redis. Pass a client of a
	// real redis-server to test the plugin's Redis calls.
	Redis redis.UniversalClient
}

// Schedule is one periodic task that a plugin registered.
type Schedule struct {
	EntryID string
	Spec    string
	Task    *asynq.Task
	Opts    []asynq.Option
}

// Host is a plugins.Host for tests: the runtime's own host implementation
// (so it refuses what the runtime refuses), served from test doubles. It is
// safe for concurrent use.
type Host struct {
	plugins.Host // the real host of the plugin

	t    testing.TB
	opts Options
	logs *lockedBuffer
	mux  *asynq.ServeMux
	set  *pluginhost.Set
	reg  *health.Registry // refuses what the runtime's refuses

	mu        sync.Mutex
	schedules []Schedule
	checks    []healthcheck.Check // as the plugin named them, in order
	enqueued  []*asynq.Task
}

var _ plugins.Host = (*Host)(nil)

// NewHost returns a Host for one plugin.
func NewHost(t testing.TB, opts Options) *Host {
	t.Helper()
	if opts.ID == "" {
		opts.ID = "test"
	}
	if opts.Cache == nil {
		if err := cache.ValidateNamespace(opts.ID); err != nil {
			t.Fatalf("pluginstest: plugin ID %q is not a cache namespace: %v", opts.ID, err)
		}
		m := cache.NewMemory(cache.Options{})
		t.Cleanup(m.Close)
		opts.Cache = m.Namespace(opts.ID)
	}
	if opts.Limiter == nil {
		reg, err := ratelimit.New(nil, ratelimit.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatalf("pluginstest: ratelimit registry: %v", err)
		}
		t.Cleanup(func() { _ = reg.Close() })
		opts.Limiter = reg.Limiter
	}
	if opts.CheckTimeout <= 0 {
		opts.CheckTimeout = time.Second
	}
	if opts.Redis == nil {
		down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:0"})
		_ = down.Close()
		opts.Redis = down
	}
	h := &Host{t: t, opts: opts, mux: asynq.NewServeMux(), reg: health.NewRegistry(opts.CheckTimeout)}
	log := opts.Logger
	if log == nil {
		h.logs = &lockedBuffer{}
		log = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		t.Cleanup(func() {
			if t.Failed() && h.logs.Len() > 0 {
				t.Logf("plugin %s logged:\n%s", opts.ID, h.logs.String())
			}
		})
	}
	h.set = pluginhost.New(pluginhost.Deps{
		Logger:   log,
		Sections: map[string]map[string]any{opts.ID: opts.Config},
		Mux:      h.mux,
		Schedule: h.schedule,
		Cache:    func(string) cache.Store { return opts.Cache },
		Limiter:  opts.Limiter,
		AddCheck: h.addCheck,
		Enqueue:  h.enqueue,
		Redis:    opts.Redis,
	})
	h.Host = h.set.Host(opts.ID)
	return h
}

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

// enqueue calls Options.Enqueue, or records the task.
func (h *Host) enqueue(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	if h.opts.Enqueue != nil {
		return h.opts.Enqueue(ctx, task, opts...)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.enqueued = append(h.enqueued, task)
	return &asynq.TaskInfo{
		ID:      "task-" + strconv.Itoa(len(h.enqueued)),
		Queue:   "default",
		Type:    task.Type(),
		Payload: task.Payload(),
		State:   asynq.TaskStatePending,
	}, nil
}

// ErrNoHandler is returned by Run for a task type without a handler.
var ErrNoHandler = errors.New("pluginstest: no handler for the task type")

// Run runs the handler registered for taskType with payload, as the worker
// would for a task of that type, and returns its error.
func (h *Host) Run(ctx context.Context, taskType string, payload []byte) error {
	return h.RunTask(ctx, asynq.NewTask(taskType, payload))
}

// RunTask runs the handler that the worker would pick for task.
func (h *Host) RunTask(ctx context.Context, task *asynq.Task) error {
	if _, pattern := h.mux.Handler(task); pattern == "" {
		return fmt.Errorf("%w: %q", ErrNoHandler, task.Type())
	}
	return h.mux.ProcessTask(ctx, task)
}

// TaskTypes returns the registered task types, sorted.
func (h *Host) TaskTypes() []string { return h.set.TaskTypes() }

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

// Enqueued returns the tasks recorded by Enqueue, in order.
func (h *Host) Enqueued() []*asynq.Task {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.enqueued)
}

// Logs returns what the plugin logged so far, as slog text lines. It is
// empty when Options.Logger was given.
func (h *Host) Logs() string {
	if h.logs == nil {
		return ""
	}
	return h.logs.String()
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}
