package tracing

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
)

// InstrumentRedis adds go-redis' own OpenTelemetry hook to rdb
// (tracing.redis_commands), with spans from tp: a span per command or
// pipeline made in the context of a span, such as a task's or an
// enqueue's, nested under it. Commands without one (asynq's polling,
// heartbeats, the monitor's pings) get no span, or every poll would start a
// trace. Command arguments are not recorded: they hold cached values and
// payloads.
func InstrumentRedis(rdb redis.UniversalClient, tp trace.TracerProvider) error {
	err := redisotel.InstrumentTracing(rdb,
		redisotel.WithTracerProvider(childOnly{tp}),
		redisotel.WithDBStatement(false))
	if err != nil {
		return fmt.Errorf("tracing: redis commands: %w", err)
	}
	return nil
}

// childOnly is a TracerProvider whose tracers start spans only under a
// valid parent; elsewhere they return the context's own non-recording span.
type childOnly struct{ trace.TracerProvider }

func (c childOnly) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return childOnlyTracer{c.TracerProvider.Tracer(name, opts...)}
}

type childOnlyTracer struct{ trace.Tracer }

func (t childOnlyTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.Tracer.Start(ctx, name, opts...)
}
