package taskhostcmd

import (
	"log/slog"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/taskhost/taskhost"
)

// useTracing makes the runtime's tracer provider the process's global one,
// so that plugins' otel.Tracer(...) spans nest under the task's span, with
// W3C trace context and baggage as the global propagator; and sends the
// OpenTelemetry SDK's internal errors to the log instead of its default
// unstructured lines. With tracing off the provider is a no-op one and
// nothing is built.
func useTracing(rt *taskhost.Runtime, log *slog.Logger) {
	otel.SetTracerProvider(rt.TracerProvider())
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	tlog := log.With("component", "tracing")
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		tlog.Warn("opentelemetry error", "error", err.Error())
	}))
}
