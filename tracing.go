package taskhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/taskhost/taskhost/internal/metrics"
	"github.com/taskhost/taskhost/internal/outbox"
	"github.com/taskhost/taskhost/internal/schedule"
	"github.com/taskhost/taskhost/internal/tracing"
)

// InjectTrace writes the trace context of ctx (W3C traceparent, tracestate
// and baggage) into headers and returns them, making the map when headers
// is nil. An application that enqueues with a plain asynq.Client uses it to
// make the handler's span a child of its own:
//
//	task := asynq.NewTaskWithHeaders("email:send", payload, taskhost.InjectTrace(ctx, nil))
//	info, err := client.EnqueueContext(ctx, task)
//
// Workers read the same headers whatever the application's global
// OpenTelemetry propagator is. It writes nothing when ctx holds no valid
// span, and costs nothing beyond the map then.
func InjectTrace(ctx context.Context, headers map[string]string) map[string]string {
	if headers == nil {
		headers = make(map[string]string, 2)
	}
	tracing.Inject(ctx, headers)
	return headers
}

// resolveTracing decides from the OTEL_* environment and cfg.Tracing
// whether the runtime traces. A bad variable is a config error.
func resolveTracing(cfg Config) (tracing.Settings, error) {
	s, err := tracing.Resolve(os.Environ(), cfg.Tracing.Enabled, cfg.Tracing.RedisCommands)
	if err != nil {
		return s, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return s, nil
}

// startTracing builds the tracer the runtime's hooks use: on the program's
// own provider when Options.TracerProvider is set, else on an SDK built
// from s when tracing is on. With tracing off it builds nothing and r.tracer
// stays nil, so no hook is installed.
func (r *Runtime) startTracing(ctx context.Context, s tracing.Settings, opts Options) error {
	switch {
	case opts.TracerProvider != nil:
		r.tracerProvider = opts.TracerProvider
		r.tracer = tracing.NewTracer(opts.TracerProvider)
	case !s.Enabled:
		r.log.Debug("tracing off", "component", "tracing", "why", s.Why)
		return nil
	default:
		p, err := tracing.Start(ctx, s, tracing.Options{Logger: r.log, Version: r.version})
		if err != nil {
			return err
		}
		r.traceProvider, r.tracerProvider, r.tracer = p, p.TracerProvider(), p.Tracer()
	}
	if r.cfg.Tracing.RedisCommands {
		if err := tracing.InstrumentRedis(r.rdb, r.tracerProvider); err != nil {
			r.stopTracing()
			return err
		}
	}
	return nil
}

// stopTracing exports the spans still buffered, within a few seconds.
func (r *Runtime) stopTracing() {
	if r.traceProvider == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.traceProvider.Shutdown(ctx); err != nil {
		r.log.Warn("spans not all exported before stop", "component", "tracing", "error", err)
	}
	r.traceProvider = nil
}

// TracerProvider is the provider of the runtime's spans: the SDK it built,
// the one given in Options.TracerProvider, or a no-op one when tracing is
// off. A program may make it the global provider (the worker does), so that
// plugins' otel.Tracer(...) spans nest under the task's.
func (r *Runtime) TracerProvider() trace.TracerProvider {
	if r.tracerProvider == nil {
		return noop.NewTracerProvider()
	}
	return r.tracerProvider
}

// traceMiddleware gives each task a CONSUMER span, the child of its
// enqueue's span when its headers carry one, and ends it with the task's
// outcome. It is the outermost middleware, so that every line logged in the
// task's context, the panic report included, carries the span's IDs.
func traceMiddleware(tr *tracing.Tracer) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) (err error) {
			ctx, span := tr.StartProcess(ctx, t)
			defer func() {
				out := outcome(ctx, err, false)
				var failed error
				if out != metrics.OutcomeSuccess && out != metrics.OutcomeRateLimited {
					failed = err
				}
				tracing.EndProcess(span, out, failed)
			}()
			return next.ProcessTask(ctx, t)
		})
	}
}

// traceScheduled traces the scheduler's enqueues: each attempt at a tick
// starts a trace of its own, "send <queue>", whose context goes into a copy
// of the task's headers, so the handler's span is its child. A tick that
// another worker enqueued first (ErrTaskIDConflict) or that a uniqueness
// lock refused is not a failure: its span ends without an error.
func traceScheduled(tr *tracing.Tracer, enqueue schedule.Enqueuer) schedule.Enqueuer {
	return func(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
		h := make(map[string]string, len(task.Headers())+2)
		maps.Copy(h, task.Headers())
		ctx, span := tr.StartSend(ctx, tracing.SourceSchedule, task.Type(), outbox.QueueOf(task, opts), "", h)
		info, err := enqueue(ctx, outbox.WithHeaders(task, h), opts...)
		id, spanErr := "", err
		if info != nil {
			id = info.ID
		}
		if errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask) {
			spanErr = nil
		}
		tracing.EndSend(span, id, false, spanErr)
		return info, err
	}
}

// traceLogger wraps log so that lines logged in a traced context carry
// trace_id and span_id.
func traceLogger(log *slog.Logger) *slog.Logger {
	return slog.New(tracing.LogHandler(log.Handler()))
}
