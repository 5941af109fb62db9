package tracing

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
)

// propagator is W3C Trace Context with W3C Baggage, in both directions,
// whatever the process's global propagator is: the global one is a no-op
// until a program sets it, and a task must link whoever enqueued it.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Header names that carry the trace context in a task's asynq headers.
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
	HeaderBaggage     = "baggage"
)

// Inject writes the trace context of ctx into headers (traceparent, and
// tracestate and baggage when present). It writes nothing when ctx has no
// valid span context. headers must not be nil.
func Inject(ctx context.Context, headers map[string]string) {
	propagator.Inject(ctx, propagation.MapCarrier(headers))
}

// Extract returns ctx with the remote span context (and baggage) found in
// headers, or ctx itself when headers carry none.
func Extract(ctx context.Context, headers map[string]string) context.Context {
	if len(headers) == 0 || headers[HeaderTraceparent] == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier(headers))
}
