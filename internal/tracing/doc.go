// Package tracing is taskhost's OpenTelemetry wiring: it decides from the
// OTEL_* environment and the tracing: config section whether to trace,
// builds the SDK and its OTLP exporter (HTTP/protobuf or gRPC), carries a
// task's trace context in its asynq headers (W3C traceparent), starts the
// enqueue and process spans, and adds trace_id and span_id to log lines
// written in a traced context.
//
// With tracing off nothing here is built: no exporter, no goroutine, no dial,
// and the runtime installs none of its hooks.
package tracing
