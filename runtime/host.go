package runtime

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/healthcheck"
	"github.com/taskhost/taskhost/internal/config"
	"github.com/taskhost/taskhost/plugins"
	"github.com/taskhost/taskhost/ratelimit"
)

// host is the plugins.Host of one plugin.
type host struct {
	id  string
	rt  *Runtime
	log *slog.Logger
	// errs collects what HandleFunc and AddCheck cannot return; provisioning
	// fails with them.
	errs []error
}

var _ plugins.Host = (*host)(nil)

func newHost(rt *Runtime, id string) *host {
	return &host{id: id, rt: rt, log: rt.log.With("component", "plugin", "plugin", id)}
}

func (h *host) Logger() *slog.Logger { return h.log }

func (h *host) DecodeConfig(v any) error {
	return config.DecodeSection("plugins."+h.id, h.rt.cfg.Plugins[h.id], v)
}

func (h *host) HandleFunc(taskType string, fn asynq.HandlerFunc) {
	if owner, dup := h.rt.handlers[taskType]; dup {
		h.errs = append(h.errs, fmt.Errorf("task type %q is already handled by plugin %q", taskType, owner))
		return
	}
	h.rt.handlers[taskType] = h.id
	h.rt.queue.mux.Handle(taskType, fn)
}

func (h *host) Schedule(cronspec string, task *asynq.Task, opts ...asynq.Option) (string, error) {
	id, err := h.rt.queue.scheduler.Register(cronspec, h.rt.scheduled(task), opts...)
	if err != nil {
		return "", fmt.Errorf("plugin %s: schedule %q for %s: %w", h.id, cronspec, task.Type(), err)
	}
	return id, nil
}

func (h *host) Cache() cache.Store { return h.rt.cache.Namespace(h.id) }

func (h *host) Limiter(name, rate string) (*ratelimit.Limiter, error) {
	return h.rt.limits.Limiter(h.id+"."+name, rate)
}

func (h *host) AddCheck(c healthcheck.Check) {
	c.Name = h.id + "." + c.Name
	if err := h.rt.checks.Add(c); err != nil {
		h.errs = append(h.errs, err)
	}
}

func (h *host) Enqueue(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	return h.rt.client.EnqueueContext(ctx, task, opts...)
}
