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
	"github.com/taskhost/taskhost/internal/health"
	"github.com/taskhost/taskhost/internal/metrics"
	"github.com/taskhost/taskhost/internal/outbox"
	"github.com/taskhost/taskhost/internal/pluginhost"
	"github.com/taskhost/taskhost/internal/redisconn"
	"github.com/taskhost/taskhost/internal/tracing"
	"github.com/taskhost/taskhost/ratelimit"
)

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
	checks  *health.Registry
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

// Client returns a new handle on taskhost's enqueue client, which holds
// tasks in the outbox while Redis is down. Closing it closes only that
// handle.
func (r *Runtime) Client() *Client { return &Client{o: r.client} }

// OutboxDepth returns how many tasks the outbox holds, waiting for Redis,
// and their encoded size in bytes.
func (r *Runtime) OutboxDepth() (tasks int, bytes int64) { return r.client.Depth() }

// Cache is the shared cache: Redis while the connection is ready, a
// bounded memory store while it is not, switched by the connection monitor
// only. Use a namespace of your own (Cache().Namespace("myapp")). The
// runtime owns it: do not Close it.
func (r *Runtime) Cache() *cache.Cache { return r.cache }

// Limits is the shared rate limiter registry: counting on Redis while the
// connection is ready, per process in memory while it is not. It serves the
// ratelimit.limits of the config (Named), limiters of any rate (Limiter),
// and net/http middleware (HTTPMiddleware). The runtime owns it: do not
// Close it.
func (r *Runtime) Limits() *ratelimit.Registry { return r.limits }

// AddCheck adds a health check to /healthz. A failing check makes the
// report degraded, or down when c.Critical. It returns an error matching
// healthcheck.ErrInvalidCheck or healthcheck.ErrDuplicateCheck.
func (r *Runtime) AddCheck(c healthcheck.Check) error { return r.checks.Add(c) }

// Fetching reports whether the queue server is taking new tasks.
func (r *Runtime) Fetching() bool { return r.fetching.Load() }
