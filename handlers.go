package taskhost

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost/healthcheck"
	"github.com/taskhost/taskhost/plugins"
)

// A worker without a handler for the tasks it fetches fails each one with
// "handler not found" and retries it up to its max retry. That is right in
// a fleet where another worker may handle the type, and wrong everywhere
// else; so the worker says it at start, once per type as it happens, and in
// /healthz (the check runtime.handlers, non-critical: degraded).

// handlersCheck is the runtime's health check of its task handlers.
const handlersCheck = "runtime.handlers"

// unhandledFor is how long a task without a handler keeps the check failing.
const unhandledFor = 10 * time.Minute

// ErrNoHandler matches the error of a task whose type no handler of this
// worker serves. asynq retries the task: another worker may handle it.
var ErrNoHandler = errors.New("no handler for the task type in this worker")

// handlerWatch records the task types fetched without a handler.
type handlerWatch struct {
	mu   sync.Mutex
	seen map[string]unhandled
}

type unhandled struct {
	count uint64
	last  time.Time
}

// note records one task of taskType without a handler and reports whether
// it is the first of its type.
func (w *handlerWatch) note(taskType string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen == nil {
		w.seen = map[string]unhandled{}
	}
	u, seen := w.seen[taskType]
	u.count++
	u.last = time.Now()
	w.seen[taskType] = u
	return !seen
}

// recent returns the types seen within unhandledFor, with their counts.
func (w *handlerWatch) recent() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, t := range slices.Sorted(maps.Keys(w.seen)) {
		if u := w.seen[t]; time.Since(u.last) < unhandledFor {
			out = append(out, fmt.Sprintf("%s (%d)", t, u.count))
		}
	}
	return out
}

// noHandlerMiddleware answers a task without a handler itself, in place of
// the mux's NotFound: it logs the type once and counts it for the check.
func (r *Runtime) noHandlerMiddleware(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		if _, pattern := r.queue.mux.Handler(t); pattern != "" {
			return next.ProcessTask(ctx, t)
		}
		if r.unhandled.note(t.Type()) {
			r.log.Warn("task without a handler in this worker: it is retried, for a worker that has one", "component", "runtime",
				"type", t.Type(), "task_types", r.plugins.TaskTypes(), "hint", r.enableHint())
		}
		return fmt.Errorf("%w: %q", ErrNoHandler, t.Type())
	})
}

// checkHandlers fails while the worker has no handler at all, or fetched a
// task without one in the last unhandledFor.
func (r *Runtime) checkHandlers(context.Context) error {
	if len(r.plugins.TaskTypes()) == 0 {
		return errors.New("no task handlers: " + r.enableHint())
	}
	if recent := r.unhandled.recent(); len(recent) > 0 {
		return fmt.Errorf("tasks without a handler in this worker: %s", strings.Join(recent, ", "))
	}
	return nil
}

// enableHint says how to enable the compiled-in plugins.
func (r *Runtime) enableHint() string {
	ids := plugins.IDs()
	var off []string
	for _, id := range ids {
		if _, on := r.cfg.Plugins[id]; !on {
			off = append(off, id)
		}
	}
	switch {
	case len(ids) == 0:
		return "this binary compiles in no plugin; build one that imports your plugins (docs/plugins.md)"
	case len(off) == 0:
		return "every compiled-in plugin is enabled (" + strings.Join(ids, ", ") + ")"
	}
	return fmt.Sprintf("a plugin runs when its ID is under plugins: in the config, e.g. plugins: {%s: {}}; compiled in but not enabled: %s",
		off[0], strings.Join(off, ", "))
}

// warnHandlers says at start what will make tasks fail: no handler at all,
// and task types whose default queue this worker does not serve.
func (r *Runtime) warnHandlers() {
	types := r.plugins.TaskTypes()
	if len(types) == 0 {
		r.log.Warn("NO TASK HANDLERS: this worker fetches tasks from "+queueList(r.cfg.Worker.Queues)+
			" but has no handler for any; each task fails and is retried", "component", "runtime", "hint", r.enableHint())
		return
	}
	for _, t := range types {
		for _, o := range r.plugins.Defaults(t) {
			if q, ok := o.Value().(string); ok && o.Type() == asynq.QueueOpt {
				if _, served := r.cfg.Worker.Queues[q]; !served {
					r.log.Warn("task type's default queue is not served by this worker", "component", "runtime",
						"type", t, "queue", q, "worker_queues", queueList(r.cfg.Worker.Queues))
				}
			}
		}
	}
}

func queueList(queues map[string]int) string {
	return strings.Join(slices.Sorted(maps.Keys(queues)), ", ")
}

// registerHandlersCheck adds the handlers check to the registry.
func (r *Runtime) registerHandlersCheck() error {
	return r.checks.Add(healthcheck.Check{Name: handlersCheck, Run: r.checkHandlers})
}
