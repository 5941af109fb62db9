package taskhost

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/taskhost/taskhost/internal/outbox"
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
				if out != OutcomeSuccess && out != OutcomeRateLimited {
					failed = err
				}
				tracing.EndProcess(span, out, failed)
			}()
			return next.ProcessTask(ctx, t)
		})
	}
}

// scheduleTracer traces the scheduler's enqueues through asynq's hooks: a
// tick starts a trace of its own whose context goes into the task's
// headers. Host.Schedule gives each entry a private copy of its task with a
// headers map, which pre writes; a per-task lock, held from pre to the
// result, keeps two overlapping ticks of one entry from writing it at once.
type scheduleTracer struct {
	tr    *tracing.Tracer
	locks sync.Map // *asynq.Task -> *sync.Mutex

	mu    sync.Mutex
	spans map[string]scheduledSpan // by the traceparent written into the headers
}

type scheduledSpan struct {
	span trace.Span
	lock *sync.Mutex
}

func newScheduleTracer(tr *tracing.Tracer) *scheduleTracer {
	return &scheduleTracer{tr: tr, spans: map[string]scheduledSpan{}}
}

func (s *scheduleTracer) pre(task *asynq.Task, opts []asynq.Option) {
	h := task.Headers()
	if h == nil {
		return // not registered through Host.Schedule
	}
	l, _ := s.locks.LoadOrStore(task, new(sync.Mutex))
	lock := l.(*sync.Mutex)
	lock.Lock()
	_, span := s.tr.StartSend(context.Background(), tracing.SourceSchedule, task.Type(), outbox.QueueOf(task, opts), "", h)
	s.mu.Lock()
	s.spans[h[tracing.HeaderTraceparent]] = scheduledSpan{span: span, lock: lock}
	s.mu.Unlock()
}

// end ends the span whose context headers carry.
func (s *scheduleTracer) end(headers map[string]string, id string, err error) {
	key := headers[tracing.HeaderTraceparent]
	s.mu.Lock()
	e, ok := s.spans[key]
	delete(s.spans, key)
	s.mu.Unlock()
	if !ok {
		return
	}
	tracing.EndSend(e.span, id, false, err)
	e.lock.Unlock()
}

// post ends a successful tick's span; a failed one ends in failed, which
// asynq calls after post with the task.
func (s *scheduleTracer) post(info *asynq.TaskInfo, err error) {
	if err == nil && info != nil {
		s.end(info.Headers, info.ID, nil)
	}
}

func (s *scheduleTracer) failed(task *asynq.Task, _ []asynq.Option, err error) {
	if h := task.Headers(); h != nil {
		s.end(h, "", err)
	}
}

// scheduled returns the task to register with the scheduler: with tracing
// on, a copy with a headers map of its own for scheduleTracer to write.
func (r *Runtime) scheduled(task *asynq.Task) *asynq.Task {
	if r.tracer == nil {
		return task
	}
	h := make(map[string]string, len(task.Headers())+2)
	maps.Copy(h, task.Headers())
	return outbox.WithHeaders(task, h)
}

// traceLogger wraps log so that lines logged in a traced context carry
// trace_id and span_id.
func traceLogger(log *slog.Logger) *slog.Logger {
	return slog.New(tracing.LogHandler(log.Handler()))
}
