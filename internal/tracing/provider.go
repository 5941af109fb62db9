package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// DefaultServiceName is service.name when neither OTEL_SERVICE_NAME nor
// OTEL_RESOURCE_ATTRIBUTES names the service.
const DefaultServiceName = "taskhost"

// Options are the inputs of Start besides the settings.
type Options struct {
	// Logger gets the provider's few lines (component=tracing).
	Logger *slog.Logger
	// Version is service.version.
	Version string
}

// Provider is the SDK's tracer provider with its OTLP/HTTP exporter, and
// the Tracer of taskhost's spans on it.
type Provider struct {
	sdk    *sdktrace.TracerProvider
	tracer *Tracer
}

// Start builds the SDK from s and the OTEL_* environment (which the SDK
// reads itself: sampler, resource, batching, exporter endpoint, headers,
// timeout, TLS). It does not dial: the exporter connects on its first
// export. Export failures are logged once per spell of failures, with
// component=tracing, and the spans of a failed export are dropped.
func Start(ctx context.Context, s Settings, opts Options) (*Provider, error) {
	if !s.Enabled {
		return nil, fmt.Errorf("tracing: Start with tracing off")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "tracing")
	exp, err := newExporter(ctx, s)
	if err != nil {
		return nil, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(DefaultServiceName), semconv.ServiceVersion(opts.Version)),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	sdk := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithBatcher(&loggingExporter{SpanExporter: exp, log: log, endpoint: s.Endpoint}),
	)
	log.Info("tracing on: spans go to the OTLP endpoint", "endpoint", s.Endpoint, "protocol", s.Protocol,
		"why", s.Why, "redis_commands", s.RedisCommands)
	return &Provider{sdk: sdk, tracer: NewTracer(sdk)}, nil
}

// newExporter builds the OTLP exporter of s.Protocol; it reads the
// OTEL_EXPORTER_OTLP_* environment itself. Neither exporter connects
// before its first export.
func newExporter(ctx context.Context, s Settings) (sdktrace.SpanExporter, error) {
	if s.Protocol == ProtocolGRPC {
		var extra []otlptracegrpc.Option
		if s.defaultEndpoint {
			extra = append(extra, otlptracegrpc.WithEndpointURL(s.Endpoint))
		}
		exp, err := otlptracegrpc.New(ctx, extra...)
		if err != nil {
			return nil, fmt.Errorf("tracing: OTLP/gRPC exporter: %w", err)
		}
		return exp, nil
	}
	var extra []otlptracehttp.Option
	if s.defaultEndpoint {
		extra = append(extra, otlptracehttp.WithEndpointURL(s.Endpoint))
	}
	exp, err := otlptracehttp.New(ctx, extra...)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP/HTTP exporter: %w", err)
	}
	return exp, nil
}

// TracerProvider is the SDK provider, for plugins' and the application's
// own spans.
func (p *Provider) TracerProvider() trace.TracerProvider { return p.sdk }

// Tracer is taskhost's tracer on the provider.
func (p *Provider) Tracer() *Tracer { return p.tracer }

// Shutdown exports what is buffered and stops the exporter, within ctx.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.sdk.Shutdown(ctx)
}

// loggingExporter logs export failures itself, once per spell, instead of
// handing them to the OpenTelemetry global error handler (which prints
// unstructured lines), and drops the failed batch.
type loggingExporter struct {
	sdktrace.SpanExporter
	log      *slog.Logger
	endpoint string
	failing  atomic.Bool
}

func (e *loggingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	begin := time.Now()
	err := e.SpanExporter.ExportSpans(ctx, spans)
	switch {
	case err != nil && !e.failing.Swap(true):
		e.log.Warn("span export failing; spans are dropped until the collector answers",
			"endpoint", e.endpoint, "spans", len(spans), "took", time.Since(begin).Round(time.Millisecond), "error", err.Error())
	case err == nil && e.failing.Swap(false):
		e.log.Info("span export recovered", "endpoint", e.endpoint)
	}
	return nil
}
