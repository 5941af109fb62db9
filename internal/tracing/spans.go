package tracing

import (
	"context"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// InstrumentationName names taskhost's tracer.
const InstrumentationName = "github.com/taskhost/taskhost"

// System is messaging.system: asynq has no registered value, so taskhost
// uses its name, as the semantic conventions allow.
const System = "asynq"

// Attributes of taskhost's own, where the messaging conventions have none.
const (
	AttrTaskType   = attribute.Key("taskhost.task.type")
	AttrRetryCount = attribute.Key("taskhost.task.retry_count")
	AttrMaxRetry   = attribute.Key("taskhost.task.max_retry")
	AttrOutcome    = attribute.Key("taskhost.task.outcome")
	AttrHeld       = attribute.Key("taskhost.outbox.held")
	AttrReplay     = attribute.Key("taskhost.outbox.replay")
	AttrSource     = attribute.Key("taskhost.enqueue.source")
)

// Enqueue sources, the value of AttrSource.
const (
	SourceClient   = "client"   // taskhost's Client (and Host.Enqueue)
	SourceSchedule = "schedule" // a periodic task of the scheduler
	SourceCLI      = "cli"      // worker enqueue
)

// Tracer starts taskhost's spans. A nil *Tracer means tracing is off;
// callers test for nil and do nothing, so that the per-task path costs
// nothing then.
type Tracer struct{ t trace.Tracer }

// NewTracer returns a Tracer on tp.
func NewTracer(tp trace.TracerProvider) *Tracer {
	return &Tracer{t: tp.Tracer(InstrumentationName)}
}

// StartSend starts the PRODUCER span of one enqueue, "send <queue>", and
// writes its context into headers (which must not be nil), so that the
// handler's span becomes its child. id may be empty when asynq assigns it;
// EndSend records it then.
func (t *Tracer) StartSend(ctx context.Context, source, taskType, queue, id string, headers map[string]string) (context.Context, trace.Span) {
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String(System),
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName("send"),
		semconv.MessagingDestinationName(queue),
		AttrTaskType.String(taskType),
		AttrSource.String(source),
	}
	if id != "" {
		attrs = append(attrs, semconv.MessagingMessageID(id))
	}
	ctx, span := t.t.Start(ctx, "send "+queue, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	Inject(ctx, headers)
	return ctx, span
}

// StartReplay starts the span of a held task's delivery from the outbox.
// It is the root of a trace of its own, linked to the enqueue's span, whose
// context the task keeps in its headers (so the handler is still the
// enqueue's child).
func (t *Tracer) StartReplay(ctx context.Context, taskType, queue, id string, headers map[string]string) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithNewRoot(),
		trace.WithAttributes(
			semconv.MessagingSystemKey.String(System),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("send"),
			semconv.MessagingDestinationName(queue),
			semconv.MessagingMessageID(id),
			AttrTaskType.String(taskType),
			AttrSource.String(SourceClient),
			AttrReplay.Bool(true),
		),
	}
	if l := trace.LinkFromContext(Extract(context.Background(), headers)); l.SpanContext.IsValid() {
		opts = append(opts, trace.WithLinks(l))
	}
	return t.t.Start(ctx, "send "+queue, opts...)
}

// EndSend ends an enqueue span: id is the task's ID as Redis or the outbox
// took it ("" when unknown), held says the outbox holds it, err is the
// enqueue's error.
func EndSend(span trace.Span, id string, held bool, err error) {
	if id != "" {
		span.SetAttributes(semconv.MessagingMessageID(id))
	}
	if held {
		span.SetAttributes(AttrHeld.Bool(true))
	}
	if err != nil {
		fail(span, err)
	}
	span.End()
}

// StartProcess starts the CONSUMER span of one task, "process <queue>", as
// the child of the span whose context the task's headers carry, or as the
// root of a new trace when they carry none.
func (t *Tracer) StartProcess(ctx context.Context, task *asynq.Task) (context.Context, trace.Span) {
	id, _ := asynq.GetTaskID(ctx)
	queue, _ := asynq.GetQueueName(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	return t.t.Start(Extract(ctx, task.Headers()), "process "+queue,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			semconv.MessagingSystemKey.String(System),
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"),
			semconv.MessagingDestinationName(queue),
			semconv.MessagingMessageID(id),
			semconv.MessagingMessageBodySize(len(task.Payload())),
			AttrTaskType.String(task.Type()),
			AttrRetryCount.Int(retried),
			AttrMaxRetry.Int(maxRetry),
		))
}

// EndProcess ends a task's span with its outcome. err is the handler's
// error when the outcome is a failure (failure, panic, archived), nil
// otherwise: a rate-limited task is not an error.
func EndProcess(span trace.Span, outcome string, err error) {
	span.SetAttributes(AttrOutcome.String(outcome))
	if err != nil {
		fail(span, err)
	}
	span.End()
}

func fail(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	span.SetAttributes(semconv.ErrorType(err))
}
