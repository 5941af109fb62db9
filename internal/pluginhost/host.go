package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/healthcheck"
	"github.com/taskhost/taskhost/internal/config"
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
	h.set.deps.Mux.Handle(taskType, fn)
}

func (h *host) Schedule(cronspec string, task *asynq.Task, opts ...asynq.Option) (string, error) {
	if err := ValidateSchedule("plugins."+h.id, cronspec, task, opts...); err != nil {
		return "", err
	}
	name := h.set.entryName(h.id, task.Type())
	if err := h.set.deps.Schedule(name, cronspec, task, opts...); err != nil {
		return "", fmt.Errorf("plugin %s: schedule %q for %s: %w", h.id, cronspec, task.Type(), err)
	}
	return name, nil
}

func (h *host) Cache() cache.Store { return h.set.deps.Cache(h.id) }

func (h *host) Limiter(name, rate string) (*ratelimit.Limiter, error) {
	return h.set.deps.Limiter(h.id+"."+name, rate)
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
	return h.set.deps.Enqueue(ctx, task, opts...)
}
