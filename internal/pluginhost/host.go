package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/ulule/limiter/v3"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/healthcheck"
	"github.com/taskhost/taskhost/internal/config"
	"github.com/taskhost/taskhost/internal/tasklog"
	"github.com/taskhost/taskhost/plugins"
	"github.com/taskhost/taskhost/ratelimit"
)

// host is the plugins.Host of one plugin.
type host struct {
	id  string
	set *Set
	log *slog.Logger

	mu sync.Mutex
	// errs collects what HandleFunc and AddCheck cannot return;
	// provisioning fails with them.
	errs []error
}

// Interface guard.
var _ plugins.Host = (*host)(nil)

func (s *Set) newHost(id string) *host {
	return &host{id: id, set: s, log: s.deps.Logger.With("component", "plugin", "plugin", id)}
}

func (h *host) refuse(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.errs = append(h.errs, err)
}

func (h *host) refused() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return errors.Join(h.errs...)
}

func (h *host) Logger() *slog.Logger { return h.log }

// TaskLogger adds what asynq's context and the task's note say about the
// task to the plugin's logger.
func (h *host) TaskLogger(ctx context.Context) *slog.Logger {
	id, ok := asynq.GetTaskID(ctx)
	if !ok {
		return h.log
	}
	queue, _ := asynq.GetQueueName(ctx)
	retry, _ := asynq.GetRetryCount(ctx)
	return h.log.With("task_id", id, "type", tasklog.From(ctx).Type(), "queue", queue, "retry", retry)
}

func (h *host) TaskDefaults(taskType string, opts ...asynq.Option) {
	if err := h.set.setDefaults(h.id, taskType, opts); err != nil {
		h.refuse(err)
	}
}

func (h *host) DecodeConfig(v any) error {
	return config.DecodeSection("plugins."+h.id, h.set.deps.Sections[h.id], v)
}

// HandleFunc registers fn for taskType on the shared mux. An empty type, a
// nil fn or a type registered before makes provisioning fail (asynq's mux
// would panic on the first two).
func (h *host) HandleFunc(taskType string, fn asynq.HandlerFunc) {
	switch {
	case taskType == "":
		h.refuse(errors.New("HandleFunc with an empty task type"))
		return
	case fn == nil:
		h.refuse(fmt.Errorf("HandleFunc %q with a nil handler", taskType))
		return
	}
	if err := h.set.claim(h.id, taskType); err != nil {
		h.refuse(err)
		return
	}
	h.set.deps.Mux.Handle(taskType, asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		ctx, _ = tasklog.With(ctx, t.Type())
		return fn(ctx, t)
	}))
}

func (h *host) Schedule(cronspec string, task *asynq.Task, opts ...asynq.Option) (string, error) {
	if err := ValidateSchedule("plugins."+h.id, cronspec, task, opts...); err != nil {
		return "", err
	}
	name := h.set.entryName(h.id, task.Type())
	if err := h.set.deps.Schedule(name, cronspec, task, h.set.WithDefaults(task, opts)...); err != nil {
		return "", fmt.Errorf("plugin %s: schedule %q for %s: %w", h.id, cronspec, task.Type(), err)
	}
	return name, nil
}

func (h *host) Cache() cache.Store { return h.set.deps.Cache(h.id) }

// Limiter checks the rate first, so that a bad one is a config error the
// plugin can name the key of.
func (h *host) Limiter(name, rate string) (*ratelimit.Limiter, error) {
	if _, err := ratelimit.ParseRate(rate); err != nil {
		return nil, h.configError(fmt.Sprintf("limiter %q: %v", name, err))
	}
	return h.set.deps.Limiter(h.id+"."+name, rate)
}

func (h *host) LimiterN(name string, n int64, per time.Duration) (*ratelimit.Limiter, error) {
	if n < 1 || per <= 0 {
		return nil, h.configError(fmt.Sprintf("limiter %q: %d per %s is not a rate (expected at least 1 event per a positive period)", name, n, per))
	}
	return h.set.deps.LimiterRate(h.id+"."+name, limiter.Rate{Limit: n, Period: per})
}

func (h *host) NamedLimiter(name string) (*ratelimit.Limiter, error) {
	l, err := h.set.deps.NamedLimiter(name)
	if errors.Is(err, ratelimit.ErrUnknownLimiter) {
		var ps config.Problems
		ps.Add("ratelimit.limits."+name, fmt.Sprintf("not configured, and plugin %s needs it (%v)", h.id, err))
		return nil, ps.Err(nil)
	}
	return l, err
}

func (h *host) Metrics() prometheus.Registerer {
	return prometheus.WrapRegistererWith(prometheus.Labels{"plugin": h.id}, h.set.deps.Metrics)
}

// configError is a config problem of the plugin's section.
func (h *host) configError(msg string) error {
	var ps config.Problems
	ps.Add("plugins."+h.id, msg)
	return ps.Err(nil)
}

// AddCheck adds c under <id>.<name>. A check the registry refuses (an
// empty name, a nil Run, a name used twice) makes provisioning fail.
func (h *host) AddCheck(c healthcheck.Check) {
	if c.Name == "" {
		h.refuse(fmt.Errorf("%w: empty name", healthcheck.ErrInvalidCheck))
		return
	}
	c.Name = h.id + "." + c.Name
	if err := h.set.deps.AddCheck(c); err != nil {
		h.refuse(err)
	}
}

func (h *host) Redis() redis.UniversalClient { return h.set.deps.Redis }

func (h *host) Enqueue(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	if task == nil {
		return nil, errors.New("Enqueue with a nil task")
	}
	return h.set.deps.Enqueue(ctx, task, h.set.WithDefaults(task, opts)...)
}
