package plugins

import (
	"context"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/healthcheck"
	"github.com/taskhost/taskhost/ratelimit"
)

// Plugin is a compiled-in module of task handlers.
type Plugin interface {
	PluginInfo() Info
}

// Info describes a plugin to the registry.
type Info struct {
	// ID names the plugin; it is also its config key, plugins.<id>.
	ID string
	// New returns a fresh, unconfigured instance.
	New func() Plugin
}

// Provisioner is implemented by plugins that set themselves up: decode
// config, register handlers, schedules and checks. It runs first.
type Provisioner interface {
	Provision(ctx context.Context, h Host) error
}

// Validator is implemented by plugins that check their provisioned state.
// It runs after Provision.
type Validator interface {
	Validate() error
}

// Service is implemented by plugins with background work. Start runs after
// the queue server and scheduler have started; Stop runs before they stop.
type Service interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// CleanerUpper is implemented by plugins that hold resources. Cleanup runs
// when the worker stops, and also after a failed Provision or Validate.
type CleanerUpper interface {
	Cleanup() error
}

// Host is what the runtime gives each plugin.
type Host interface {
	// Logger has component=plugin and plugin=<id>.
	Logger() *slog.Logger
	// TaskLogger is Logger with the attributes of the task that ctx
	// belongs to: task_id, type, queue and retry. Use it inside a
	// handler; outside one it is Logger.
	TaskLogger(ctx context.Context) *slog.Logger
	// DecodeConfig decodes the plugin's section, plugins.<id>, into v
	// strictly: an unknown key is an error that names it.
	DecodeConfig(v any) error
	// HandleFunc registers the handler for a task type. Prefer the typed
	// Handle function, which decodes the payload.
	HandleFunc(taskType string, h asynq.HandlerFunc)
	// TaskDefaults sets the options that tasks of taskType get unless the
	// enqueuer sets them: asynq.Queue, asynq.Timeout, asynq.MaxRetry,
	// asynq.Unique, asynq.Retention. Enqueue, Schedule and `worker
	// enqueue` apply them; a plain asynq client does not. Any other option
	// makes provisioning fail.
	TaskDefaults(taskType string, opts ...asynq.Option)
	// Schedule enqueues task on cronspec (five fields in UTC, or a
	// descriptor such as @hourly or @every 1m) once per tick across every
	// worker on the same Redis: each worker enqueues each tick under a task
	// ID derived from the tick, and Redis keeps the first. The entry ID is
	// plugins.<id>.<task type>. The scheduler sets the task ID, so a TaskID
	// option is refused; an asynq.Unique TTL must be shorter than the gap
	// between ticks. See docs/plugins.md.
	Schedule(cronspec string, task *asynq.Task, opts ...asynq.Option) (entryID string, err error)
	// Cache is the shared cache, namespaced to the plugin.
	Cache() cache.Store
	// Limiter returns a limiter for rate in ulule's format, e.g. "50-S",
	// with keys namespaced to the plugin and name. A bad rate is a config
	// error: wrap it in a ConfigError to name the key it came from.
	Limiter(name, rate string) (*ratelimit.Limiter, error)
	// LimiterN returns a limiter of n events per period (at least 1 and
	// more than zero), keyed like Limiter's.
	LimiterN(name string, n int64, per time.Duration) (*ratelimit.Limiter, error)
	// NamedLimiter returns the limiter that the worker's config defines as
	// ratelimit.limits.<name>; it shares its counters with every other
	// user of that name. A name that is not configured is a config error.
	NamedLimiter(name string) (*ratelimit.Limiter, error)
	// Metrics registers the plugin's own Prometheus collectors, served on
	// the worker's /metrics; each series gets the label plugin=<id>.
	Metrics() prometheus.Registerer
	// AddCheck adds a health check, reported under the plugin's ID.
	AddCheck(c healthcheck.Check)
	// Enqueue enqueues through taskhost's client, which holds the task in
	// the outbox while Redis is down, with the task type's defaults.
	Enqueue(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
	// Redis is the process's shared Redis client, for what the cache, the
	// limiter and Enqueue do not cover. It has NO fallback: while Redis is
	// down every call fails (within about a second; go-redis errors), and
	// the plugin must handle that. Keys are not namespaced: prefix yours
	// with the plugin's ID. Do not close it.
	Redis() redis.UniversalClient
}

// DefaultTimeout is the timeout of plugin lifecycle calls when the runtime
// has none of its own.
const DefaultTimeout = 30 * time.Second
