package taskhost

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/healthcheck"
	"github.com/taskhost/taskhost/internal/metrics"
	"github.com/taskhost/taskhost/internal/outbox"
	"github.com/taskhost/taskhost/internal/pluginhost"
	"github.com/taskhost/taskhost/internal/redisconn"
	"github.com/taskhost/taskhost/internal/tracing"
	"github.com/taskhost/taskhost/ratelimit"
)

// State is the Redis connection state published by the monitor.
type State = redisconn.State

// Client enqueues tasks like asynq.Client, holding them in an outbox while
// Redis is down.
type Client = outbox.Client

// Options are the runtime's non-config inputs.
type Options struct {
	// Logger is the process logger; by default one is built from cfg.Log on stderr.
	Logger *slog.Logger
	// Version is reported by /healthz.
	Version string
	// LogOutput is where the default logger writes; os.Stderr when nil.
	LogOutput io.Writer
	// TracerProvider, when set, is the provider of the runtime's spans, and
	// tracing is on whatever the OTEL_* environment and tracing: say; the
	// program owns it (the runtime does not shut it down). When nil, the
	// runtime builds its own SDK if the environment or tracing.enabled turn
	// tracing on (see docs/observability.md).
	TracerProvider trace.TracerProvider
	// ConfigSource reads the config again for Reload (the worker's SIGHUP
	// and `worker reload`); the worker passes LoadConfig with its flags.
	// Nil makes Reload fail with ErrNoConfigSource.
	ConfigSource func(ctx context.Context) (Config, error)
}

// Runtime is one worker: the Redis connection and everything served from it.
// Create it with New, then Start and Stop it, or Run it until its context ends.
type Runtime struct {
	cfg     Config
	log     *slog.Logger
	version string
	born    time.Time

	embedded *miniredis.Miniredis
	rdb      redis.UniversalClient // application pool: cache, limiter, health, client
	qrdb     redis.UniversalClient // queue pool: asynq only
	probe    redis.UniversalClient // the monitor's own one-connection client
	monitor  *redisconn.Monitor

	cache   *cache.Cache
	limits  *ratelimit.Registry
	checks  *healthcheck.Registry
	metrics *metrics.Metrics
	queue   *queue
	client  *outbox.Client
	httpSrv *http.Server
	httpLn  net.Listener
	ui      uiState // the dashboard's own listener, when ui.addr is set

	// taskLimit is the rate limit hook from ratelimit.tasks; nil when none.
	taskLimit asynq.MiddlewareFunc

	// tracer starts the enqueue and task spans; nil when tracing is off,
	// and then no tracing hook is installed. traceProvider is the SDK the
	// runtime built and shuts down; tracerProvider is what TracerProvider
	// returns.
	tracer         *tracing.Tracer
	traceProvider  *tracing.Provider
	tracerProvider trace.TracerProvider

	rl reloadState // the running config's generation and what reloads change (reload.go)

	obs   *observer   // what the health report shows that no component keeps
	fold  *outageLog  // folds asynq's lines during an outage
	tasks taskCounter // counts tasks in flight, for metrics and the stop log

	unhandled handlerWatch // task types fetched without a handler
	plugins   *pluginhost.Set
	unsub     []func()

	mu       sync.Mutex
	phase    phase
	fetching atomic.Bool
}

type phase int

const (
	phaseNew phase = iota
	phaseStarting
	phaseRunning
	phaseStopped
)

// Redis is the shared application client. The runtime owns it: do not close it.
func (r *Runtime) Redis() redis.UniversalClient { return r.rdb }

// State is the current connection state.
func (r *Runtime) State() State { return r.monitor.State() }

// Monitor is the connection state monitor; subscribe to it for transitions.
func (r *Runtime) Monitor() *redisconn.Monitor { return r.monitor }

// Client is taskhost's enqueue client with its outbox.
func (r *Runtime) Client() *Client { return r.client }

// Cache is the shared cache.
func (r *Runtime) Cache() *cache.Cache { return r.cache }

// Limits is the shared rate limiter registry.
func (r *Runtime) Limits() *ratelimit.Registry { return r.limits }

// Checks is the health check registry.
func (r *Runtime) Checks() *healthcheck.Registry { return r.checks }

// Fetching reports whether the queue server is taking new tasks.
func (r *Runtime) Fetching() bool { return r.fetching.Load() }

// Result is what Client.Submit returns: the task's info, and whether it is
// held in the outbox rather than in Redis.
type Result = outbox.Result

// Errors of the Client.
var (
	// ErrOutboxFull is returned when Redis is down and the outbox is at
	// outbox.max_tasks or outbox.max_bytes. The task was not accepted.
	ErrOutboxFull = outbox.ErrOutboxFull
	// ErrClosed is returned by a Client used after the runtime stopped.
	ErrClosed = outbox.ErrClosed
	// ErrPayloadTooLarge is matched by the error of a task whose payload
	// is larger than worker.max_payload_bytes: Client, Host.Enqueue and
	// Host.Schedule refuse it before anything is sent, and a worker
	// archives one that another client enqueued.
	ErrPayloadTooLarge = outbox.ErrPayloadTooLarge
)
