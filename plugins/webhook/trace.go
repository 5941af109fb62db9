package webhook

import (
	"context"
	"net/url"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// startSpan starts a CLIENT span for the HTTP request of a delivery, under
// the task's span, from the task's own tracer provider. Without a span in
// ctx (tracing off) it starts nothing and costs nothing. The URL is not
// recorded, as its path or query may hold a token: the host only.
func startSpan(ctx context.Context, method string, u *url.URL) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return ctx, nil
	}
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", method),
		attribute.String("server.address", u.Hostname()),
	}
	if p, err := strconv.Atoi(u.Port()); err == nil {
		attrs = append(attrs, attribute.Int("server.port", p))
	}
	return parent.TracerProvider().Tracer("github.com/taskhost/taskhost/plugins/webhook").
		Start(ctx, method, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// endSpan ends span with the response's status code (0: none) and the
// delivery's error.
func endSpan(span trace.Span, code int, err error) {
	if span == nil {
		return
	}
	if code != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", code))
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
