package taskhost

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost/internal/health"
	"github.com/taskhost/taskhost/internal/logswitch"
	"github.com/taskhost/taskhost/internal/reload"
	"github.com/taskhost/taskhost/internal/schedule"
)

// Reload outcomes, as /healthz reports the last one.
const (
	ReloadApplied   = "applied"
	ReloadUnchanged = "unchanged"
	ReloadRefused   = "refused"
	ReloadInvalid   = "invalid"
	ReloadFailed    = "failed"
)

// Errors of Reload.
var (
	// ErrReloadRefused is returned when the new config changes a key that
	// cannot change without a restart; ReloadResult.Refused names them.
	// Nothing was applied.
	ErrReloadRefused = errors.New("reload refused: a changed key needs a restart; the running config is kept")
	// ErrNoConfigSource is returned by Reload on a runtime built without
	// Options.ConfigSource.
	ErrNoConfigSource = errors.New("reload: no Options.ConfigSource to read the config from")
	// ErrNotRunning is returned by Reload before Start or after Stop.
	ErrNotRunning = errors.New("reload: the runtime is not running")
)

// ReloadResult says what a Reload did.
type ReloadResult struct {
	// Outcome is applied, unchanged, refused, invalid or failed.
	Outcome string `json:"outcome"`
	// Generation is the generation of the config that runs after the
	// reload: 1 for the config of New, one more per reload that applied a
	// change.
	Generation int64 `json:"generation"`
	// LoadedAt is when that generation was loaded.
	LoadedAt time.Time `json:"loaded_at"`
	// Applied lists the keys that changed and now apply.
	Applied []string `json:"applied,omitempty"`
	// Refused lists the changed keys that need a restart. When it is not
	// empty, nothing was applied.
	Refused []RefusedKey `json:"refused,omitempty"`
	// Error says why the reload was refused, invalid or failed.
	Error string `json:"error,omitempty"`
}

// RefusedKey is a key a reload may not change, and why.
type RefusedKey struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// Why a key needs a restart.
const (
	needsRestart  = "needs a restart"
	queuesRestart = "adding or removing a queue needs a restart: asynq's forwarder and recoverer, and the wake-ups, " +
		"watch the queues the worker started with (weights reload)"
)

// reloadState is what Reload keeps: the config that runs and its
// generation, and the pieces a reload changes.
type reloadState struct {
	// mu lets one reload run at a time; Stop takes it to mark the runtime
	// stopped, so it waits for a reload under way.
	mu     sync.Mutex
	source func(context.Context) (Config, error)
	// logs is the process logger's switchable handler; nil when the
	// program gave a logger of its own, whose level and format then need a
	// restart.
	logs *logswitch.Handler
	// tasks is the ratelimit.tasks hook, swapped whole on a reload.
	tasks *taskLimits

	cur  atomic.Pointer[Config]
	gen  atomic.Int64
	at   atomic.Pointer[time.Time]
	last atomic.Pointer[health.ReloadInfo]
}

func (s *reloadState) init(cfg Config, source func(context.Context) (Config, error), logs *logswitch.Handler) {
	s.source, s.logs = source, logs
	s.cur.Store(&cfg)
	s.gen.Store(1)
	now := time.Now()
	s.at.Store(&now)
}

// info is the /healthz config section.
func (s *reloadState) info() health.ConfigInfo {
	return health.ConfigInfo{Generation: s.gen.Load(), LoadedAt: *s.at.Load(), LastReload: s.last.Load()}
}

// Config returns the configuration that runs: the one given to New, with
// what reloads have applied since.
func (r *Runtime) Config() Config { return *r.rl.cur.Load() }

// Reload reads the config again from Options.ConfigSource and applies what
// changed, without dropping a task. It is what SIGHUP and `worker reload`
// do in the worker.
//
// These keys apply at once: log.level and log.format (when the logger came
// from NewLogger), ratelimit.limits (a changed or new name; limiters that
// plugins hold follow), ratelimit.tasks, plugins.<id> for a plugin that
// implements plugins.Reloader, schedules.<name> (a changed, new or
// removed entry, checked as at start, a plugin handling its type included;
// the schedules plugins registered are untouched), the weights of
// worker.queues and worker.strict_priority (from each fetcher's next
// dequeue round). Any other change, such as redis.*, health.addr or a
// queue added to or removed from worker.queues, needs a restart: Reload then applies
// nothing, logs one line naming each such key, and returns
// ErrReloadRefused. A config that does not load or validate is refused
// with an error matching ErrInvalidConfig. Either way the worker keeps
// running on the config it had.
func (r *Runtime) Reload(ctx context.Context) (ReloadResult, error) {
	s := &r.rl
	s.mu.Lock()
	defer s.mu.Unlock()
	res := ReloadResult{Generation: s.gen.Load(), LoadedAt: *s.at.Load()}
	r.mu.Lock()
	running := r.phase == phaseRunning
	r.mu.Unlock()
	switch {
	case !running:
		return r.reloadEnd(res, ReloadFailed, nil, ErrNotRunning)
	case s.source == nil:
		return r.reloadEnd(res, ReloadFailed, nil, ErrNoConfigSource)
	}

	cfg, err := s.source(ctx)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		if !errors.Is(err, ErrInvalidConfig) {
			err = fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		return r.reloadEnd(res, ReloadInvalid, nil, err)
	}
	old := s.cur.Load()
	changes := reload.Diff(*old, cfg)
	if len(changes) == 0 {
		return r.reloadEnd(res, ReloadUnchanged, nil, nil)
	}
	keys := make([]string, len(changes))
	for i, c := range changes {
		keys[i] = c.Key
		if reason := r.refusal(c); reason != "" {
			res.Refused = append(res.Refused, RefusedKey{Key: c.Key, Reason: reason})
		}
	}
	if len(res.Refused) > 0 {
		return r.reloadEnd(res, ReloadRefused, nil, ErrReloadRefused)
	}

	// Prepare what can fail, then apply what cannot.
	var taskMW asynq.MiddlewareFunc
	tasksChanged := changedUnder(changes, "ratelimit.tasks")
	if tasksChanged && len(cfg.RateLimit.Tasks) > 0 {
		if taskMW, err = r.limits.TaskMiddleware(cfg.RateLimit.Tasks); err != nil {
			return r.reloadEnd(res, ReloadInvalid, nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err))
		}
	}
	var schedNames []string
	var schedEntries []schedule.Entry
	if schedNames = changedSchedules(changes); len(schedNames) > 0 {
		schedEntries, err = r.configSchedules(cfg, schedNames)
		if err == nil {
			err = r.checkScheduleTypes(cfg)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				err = fmt.Errorf("%w: %w", ErrInvalidConfig, err)
			}
			return r.reloadEnd(res, ReloadInvalid, nil, err)
		}
	}
	if err := r.reloadPlugins(ctx, old, &cfg, changes); err != nil {
		outcome := ReloadFailed
		if errors.Is(err, ErrInvalidConfig) {
			outcome = ReloadInvalid
		}
		return r.reloadEnd(res, outcome, nil, err)
	}
	if changedUnder(changes, "ratelimit.limits") {
		if err := r.limits.SetLimits(cfg.RateLimit.Limits); err != nil { // checked by Validate
			return r.reloadEnd(res, ReloadInvalid, nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err))
		}
	}
	if tasksChanged {
		s.tasks.set(taskMW)
	}
	if changedUnder(changes, "worker.queues") || changedUnder(changes, "worker.strict_priority") {
		r.queue.setWeights(cfg.Worker.Queues, cfg.Worker.StrictPriority)
	}
	if changedUnder(changes, "log") {
		s.logs.Set(logLevel(cfg.Log), cfg.Log.Format)
		r.queue.logLevel.Set(logLevel(cfg.Log)) // asynq's lines (asynqLogger)
	}
	if len(schedNames) > 0 {
		r.reloadSchedules(schedNames, schedEntries)
	}
	s.cur.Store(&cfg)
	now := time.Now()
	s.at.Store(&now)
	res.Generation, res.LoadedAt = s.gen.Add(1), now
	return r.reloadEnd(res, ReloadApplied, keys, nil)
}

// reloadEnd records and logs the outcome of a reload, once.
func (r *Runtime) reloadEnd(res ReloadResult, outcome string, applied []string, err error) (ReloadResult, error) {
	res.Outcome, res.Applied = outcome, applied
	info := &health.ReloadInfo{At: time.Now(), Outcome: outcome, Keys: applied}
	log := r.log.With("component", "reload")
	switch outcome {
	case ReloadApplied:
		log.Info("config reloaded", "generation", res.Generation, "keys", strings.Join(applied, ","))
	case ReloadUnchanged:
		log.Info("config reload: nothing changed", "generation", res.Generation)
	case ReloadRefused:
		parts := make([]string, len(res.Refused))
		for i, k := range res.Refused {
			parts[i] = k.Key + " (" + k.Reason + ")"
			info.Keys = append(info.Keys, k.Key)
		}
		res.Error = "changed keys need a restart: " + strings.Join(parts, "; ")
		log.Error("config reload refused: "+res.Error+"; the running config is kept", "generation", res.Generation)
	default:
		res.Error = err.Error()
		log.Error("config reload failed; the running config is kept", "generation", res.Generation, "error", res.Error)
	}
	info.Error = res.Error
	r.rl.last.Store(info)
	return res, err
}

// refusal says why a changed key cannot be applied without a restart, or
// returns "" when it can.
func (r *Runtime) refusal(c reload.Change) string {
	switch k := c.Key; {
	case k == "log.level" || k == "log.format":
		if r.rl.logs == nil {
			return "the logger was given by the program (Options.Logger); restart to apply"
		}
		return ""
	case reload.Under(k, "ratelimit.tasks"):
		return ""
	case reload.Under(k, "ratelimit.limits"):
		if c.Kind == reload.Removed {
			return "removing a named limit needs a restart: plugins may hold its limiter"
		}
		return ""
	case reload.Under(k, SchedulesKey):
		return ""
	case reload.Under(k, "worker.queues"):
		if c.Kind != reload.Changed || k == "worker.queues" {
			return queuesRestart
		}
		return "" // a weight
	case k == "worker.strict_priority":
		return ""
	case reload.Under(k, "plugins"):
		id, _, _ := strings.Cut(strings.TrimPrefix(k, "plugins."), ".")
		provisioned, reloads := r.plugins.Provisioned(id)
		switch {
		case k == "plugins."+id && c.Kind != reload.Changed, !provisioned:
			return "adding or removing a plugin needs a restart"
		case !reloads:
			return "plugin " + id + " does not reload its settings (plugins.Reloader); restart to apply"
		}
		return ""
	}
	return needsRestart
}

// reloadPlugins gives each plugin whose section changed its new section,
// in ID order. When one fails, those before it get their old section back.
func (r *Runtime) reloadPlugins(ctx context.Context, old, cfg *Config, changes []reload.Change) error {
	var ids []string
	for _, c := range changes {
		if reload.Under(c.Key, "plugins") {
			id, _, _ := strings.Cut(strings.TrimPrefix(c.Key, "plugins."), ".")
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	for i, id := range ids {
		if err := r.plugins.Reload(ctx, id, cfg.Plugins[id]); err != nil {
			for _, back := range slices.Backward(ids[:i]) {
				if berr := r.plugins.Reload(ctx, back, old.Plugins[back]); berr != nil {
					r.log.Error("plugin could not return to its previous settings after a failed reload",
						"component", "reload", "plugin", back, "error", berr)
				}
			}
			return err
		}
	}
	return nil
}

// changedSchedules returns the names of the schedules entries that
// changed, were added or were removed, in order.
func changedSchedules(changes []reload.Change) []string {
	var names []string
	for _, c := range changes {
		if rest, ok := strings.CutPrefix(c.Key, SchedulesKey+"."); ok {
			name, _, _ := strings.Cut(rest, ".")
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	return names
}

func changedUnder(changes []reload.Change, prefix string) bool {
	return slices.ContainsFunc(changes, func(c reload.Change) bool { return reload.Under(c.Key, prefix) })
}

// taskLimits is the ratelimit.tasks hook in the handler chain: the limiter
// middleware over next, swapped whole by a reload. With no limits it calls
// next directly; either way a task costs one atomic load.
type taskLimits struct {
	next asynq.Handler
	cur  atomic.Pointer[asynq.Handler]
}

func newTaskLimits(next asynq.Handler, mw asynq.MiddlewareFunc) *taskLimits {
	t := &taskLimits{next: next}
	t.set(mw)
	return t
}

func (t *taskLimits) set(mw asynq.MiddlewareFunc) {
	h := t.next
	if mw != nil {
		h = mw(t.next)
	}
	t.cur.Store(&h)
}

func (t *taskLimits) ProcessTask(ctx context.Context, task *asynq.Task) error {
	return (*t.cur.Load()).ProcessTask(ctx, task)
}

// reloadHandler is POST /reload on the admin listener (`worker reload`).
func (r *Runtime) reloadHandler() http.Handler {
	return reload.Handler(func(ctx context.Context) (int, any) {
		res, err := r.Reload(ctx)
		switch {
		case err == nil:
			return http.StatusOK, res
		case errors.Is(err, ErrReloadRefused):
			return http.StatusConflict, res
		case errors.Is(err, ErrInvalidConfig):
			return http.StatusUnprocessableEntity, res
		case errors.Is(err, ErrNotRunning), errors.Is(err, ErrNoConfigSource):
			return http.StatusServiceUnavailable, res
		}
		return http.StatusInternalServerError, res
	})
}
