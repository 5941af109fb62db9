package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/ulule/limiter/v3"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/healthcheck"
	"github.com/taskhost/taskhost/internal/config"
	"github.com/taskhost/taskhost/internal/schedule"
	"github.com/taskhost/taskhost/plugins"
	"github.com/taskhost/taskhost/ratelimit"
)

// Deps is what the plugins of a Set are served from. The runtime passes its
// shared components; pluginstest passes its own. Every field is required.
type Deps struct {
	// Logger is the process logger; each plugin's gets component=plugin
	// and plugin=<id>.
	Logger *slog.Logger
	// Sections holds each plugin's config section, plugins.<id>.
	Sections map[string]map[string]any
	// Mux receives the handlers.
	Mux *asynq.ServeMux
	// Schedule registers a periodic task under the entry name the host
	// chose (plugins.<id>.<task type>, then #2, #3...; part of each tick's
	// task ID, so the same on every worker); the host has checked the spec,
	// the task and the options.
	Schedule func(name, cronspec string, task *asynq.Task, opts ...asynq.Option) error
	// Cache returns the cache namespace of a plugin.
	Cache func(namespace string) cache.Store
	// Limiter returns a limiter by its full name (<id>.<name>); the host
	// has checked the rate.
	Limiter func(name, rate string) (*ratelimit.Limiter, error)
	// LimiterRate returns a limiter of a parsed rate by its full name.
	LimiterRate func(name string, rate limiter.Rate) (*ratelimit.Limiter, error)
	// NamedLimiter returns the limiter of ratelimit.limits.<name>.
	NamedLimiter func(name string) (*ratelimit.Limiter, error)
	// Metrics registers the plugins' collectors; the host adds the label
	// plugin=<id>.
	Metrics prometheus.Registerer
	// AddCheck adds a check whose name is already <id>.<name>.
	AddCheck func(c healthcheck.Check) error
	// Enqueue enqueues through taskhost's client.
	Enqueue func(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
	// Redis is the shared client that Host.Redis hands out.
	Redis redis.UniversalClient
}

// Set hosts the plugins of one runtime: it provisions, starts, stops and
// cleans them up in order, and gives each its plugins.Host.
type Set struct {
	deps Deps

	mu        sync.Mutex
	handlers  map[string]string   // task type -> plugin ID
	defaults  map[string]defaults // task type -> its default options
	instances []*instance
	entries   map[string]int // schedule entry base name -> entries so named
}

type instance struct {
	id      string
	p       plugins.Plugin
	host    *host
	started bool
}

// New returns an empty Set on deps.
func New(deps Deps) *Set {
	return &Set{deps: deps, handlers: map[string]string{}, entries: map[string]int{}, defaults: map[string]defaults{}}
}

// entryName names plugin id's next periodic task of taskType:
// plugins.<id>.<type>, then plugins.<id>.<type>#2 and so on.
func (s *Set) entryName(id, taskType string) string {
	base := config.PluginsKey + "." + id + "." + taskType
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries[base]++
	if n := s.entries[base]; n > 1 {
		return base + "#" + strconv.Itoa(n)
	}
	return base
}

// ProvisionAll creates, provisions and validates each plugin with a section
// in Deps.Sections, in ID order. If one fails, Cleanup runs on it and on
// those before it, in reverse order, and the error names the plugin.
func (s *Set) ProvisionAll(ctx context.Context) error {
	ids := make([]string, 0, len(s.deps.Sections))
	for id := range s.deps.Sections {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		info, ok := plugins.Lookup(id)
		if !ok {
			s.Cleanup()
			return fmt.Errorf("%w: plugins.%s: unknown plugin", config.ErrInvalid, id)
		}
		if err := s.Provision(ctx, id, info.New()); err != nil {
			s.Cleanup()
			return err
		}
	}
	return nil
}

// Provision adds p under id and runs its Provision, then its Validate. When
// either fails, or a registration on its Host was refused, Cleanup runs on p
// and the error is returned; p is not kept.
func (s *Set) Provision(ctx context.Context, id string, p plugins.Plugin) error {
	inst := &instance{id: id, p: p, host: s.newHost(id)}
	err := inst.provision(ctx)
	if err == nil {
		s.mu.Lock()
		s.instances = append(s.instances, inst)
		s.mu.Unlock()
		s.deps.Logger.Info("plugin provisioned", "component", "plugin", "plugin", id, "task_types", s.typesOf(id))
		return nil
	}
	err = fmt.Errorf("plugin %s: %w", id, err)
	if c, ok := p.(plugins.CleanerUpper); ok {
		if cerr := c.Cleanup(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("plugin %s: cleanup: %w", id, cerr))
		}
	}
	s.dropHandlers(id)
	return err
}

func (inst *instance) provision(ctx context.Context) error {
	if p, ok := inst.p.(plugins.Provisioner); ok {
		if err := p.Provision(ctx, inst.host); err != nil {
			return fmt.Errorf("provision: %w", err)
		}
	}
	if err := inst.host.refused(); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	if v, ok := inst.p.(plugins.Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("validate: %w", err)
		}
	}
	return nil
}

// Host returns the plugins.Host that the plugin id would get, for a plugin
// provisioned by hand (pluginstest).
func (s *Set) Host(id string) plugins.Host { return s.newHost(id) }

// Len is the number of provisioned plugins.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.instances)
}

// TaskTypes returns every registered task type, sorted.
func (s *Set) TaskTypes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.handlers))
	for t := range s.handlers {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// typesOf returns the task types that plugin id registered, sorted.
func (s *Set) typesOf(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for t, owner := range s.handlers {
		if owner == id {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

// Handles reports whether a registered handler serves taskType, and whose
// it is: the handler registered for the type, or else the one with the
// longest pattern that is a prefix of it, as asynq's ServeMux picks.
func (s *Set) Handles(taskType string) (pluginID string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pattern, ok := match(s.handlers, taskType)
	return s.handlers[pattern], ok
}

// match returns the key of m that asynq's ServeMux would pick for taskType.
func match[V any](m map[string]V, taskType string) (string, bool) {
	if _, ok := m[taskType]; ok {
		return taskType, true
	}
	best, found := "", false
	for p := range m {
		if len(p) > len(best) && strings.HasPrefix(taskType, p) {
			best, found = p, true
		}
	}
	return best, found
}

// Start starts plugin services in order; if one fails, those already
// started are stopped in reverse order.
func (s *Set) Start(ctx context.Context) error {
	for _, inst := range s.snapshot() {
		svc, ok := inst.p.(plugins.Service)
		if !ok {
			continue
		}
		if err := svc.Start(ctx); err != nil {
			_ = s.Stop(ctx)
			return fmt.Errorf("plugin %s: start: %w", inst.id, err)
		}
		inst.started = true
		s.deps.Logger.Info("plugin started", "component", "plugin", "plugin", inst.id)
	}
	return nil
}

// Stop stops started plugin services in reverse order. It may be called
// more than once.
func (s *Set) Stop(ctx context.Context) error {
	var errs []error
	insts := s.snapshot()
	for i := len(insts) - 1; i >= 0; i-- {
		inst := insts[i]
		if !inst.started {
			continue
		}
		inst.started = false
		if err := inst.p.(plugins.Service).Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("plugin %s: stop: %w", inst.id, err))
			s.deps.Logger.Error("plugin stop failed", "component", "plugin", "plugin", inst.id, "error", err)
			continue
		}
		s.deps.Logger.Info("plugin stopped", "component", "plugin", "plugin", inst.id)
	}
	return errors.Join(errs...)
}

// Cleanup runs Cleanup on every provisioned plugin in reverse order, once.
func (s *Set) Cleanup() {
	s.mu.Lock()
	insts := s.instances
	s.instances = nil
	s.mu.Unlock()
	for i := len(insts) - 1; i >= 0; i-- {
		if c, ok := insts[i].p.(plugins.CleanerUpper); ok {
			if err := c.Cleanup(); err != nil {
				s.deps.Logger.Warn("plugin cleanup failed", "component", "plugin", "plugin", insts[i].id, "error", err)
			}
		}
	}
}

func (s *Set) snapshot() []*instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.instances)
}

// claim records that plugin id handles taskType, or says who already does.
func (s *Set) claim(id, taskType string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if owner, dup := s.handlers[taskType]; dup {
		if owner == id {
			return fmt.Errorf("task type %q is registered twice", taskType)
		}
		return fmt.Errorf("task type %q is already handled by plugin %q", taskType, owner)
	}
	s.handlers[taskType] = id
	return nil
}

// dropHandlers forgets the task types of a plugin whose provisioning failed.
// (asynq's mux cannot unregister; a failed provision stops the runtime.)
func (s *Set) dropHandlers(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, owner := range s.handlers {
		if owner == id {
			delete(s.handlers, t)
		}
	}
	for t, d := range s.defaults {
		if d.owner == id {
			delete(s.defaults, t)
		}
	}
}

// ValidateSchedule checks a periodic task before it is registered, as the
// runtime's scheduler does (schedule.Check): the spec with the parser
// asynq's scheduler uses (five fields, or a descriptor such as @every 1m or
// @daily), a task with a type, no TaskID option, and a uniqueness TTL
// shorter than the gap between ticks. The error names key and matches the
// config sentinel.
func ValidateSchedule(key, cronspec string, task *asynq.Task, opts ...asynq.Option) error {
	var ps config.Problems
	switch {
	case task == nil:
		ps.Add(key, "Schedule with a nil task")
	case task.Type() == "":
		ps.Add(key, "Schedule with an empty task type")
	default:
		if err := schedule.Check(cronspec, task, opts, time.Now()); err != nil {
			ps.Add(key, fmt.Sprintf("schedule %q for %s: %v", cronspec, task.Type(), err))
		}
	}
	return ps.Err(nil)
}
