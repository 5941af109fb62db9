package tracing_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/tracetest"
	"github.com/taskhost/taskhost/internal/tracing"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Start dials nothing until a span is exported, exports to the endpoint of
// the environment, and logs a failing collector once.
func TestProviderExportsAndLogsFailuresOnce(t *testing.T) {
	rcv := tracetest.Start(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL())
	t.Setenv("OTEL_SERVICE_NAME", "provider-test")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
	s, err := tracing.Resolve(os.Environ(), false, false)
	require.NoError(t, err)
	require.True(t, s.Enabled)
	var logs syncBuf
	p, err := tracing.Start(context.Background(), s, tracing.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Version: "v9"})
	require.NoError(t, err)
	require.Zero(t, rcv.Connections(), "Start dials nothing")

	_, span := p.TracerProvider().Tracer("t").Start(context.Background(), "one")
	span.End()
	got := rcv.Wait(t, 5*time.Second, "one", func(s tracetest.Span) bool { return s.Name == "one" })
	require.Equal(t, "provider-test", got.Service)
	require.NoError(t, p.Shutdown(context.Background()))
	require.Contains(t, logs.String(), "tracing on")
	require.NotContains(t, logs.String(), "failing")
}

func TestProviderLogsAFailingCollectorOnce(t *testing.T) {
	rcv := tracetest.Start(t)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", rcv.URL()+"/nowhere") // the receiver answers 404
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "10")
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1000")
	s, err := tracing.Resolve(os.Environ(), false, false)
	require.NoError(t, err)
	var logs syncBuf
	p, err := tracing.Start(context.Background(), s, tracing.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	tr := p.TracerProvider().Tracer("t")
	for i := 1; i <= 3; i++ {
		_, span := tr.Start(context.Background(), "lost")
		span.End()
		require.Eventually(t, func() bool { return rcv.BadRequests() >= i }, 5*time.Second, 10*time.Millisecond)
	}
	require.NoError(t, p.Shutdown(context.Background()))
	require.Equal(t, 1, strings.Count(logs.String(), "span export failing"), "one line per spell of failures:\n%s", logs.String())
	require.Contains(t, logs.String(), "component=tracing")
}

func TestProviderExportsOverGRPC(t *testing.T) {
	rcv := tracetest.StartGRPC(t)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL())
	t.Setenv("OTEL_SERVICE_NAME", "grpc-test")
	s, err := tracing.Resolve(os.Environ(), false, false)
	require.NoError(t, err)
	require.Equal(t, tracing.ProtocolGRPC, s.Protocol)
	p, err := tracing.Start(context.Background(), s, tracing.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	_, span := p.TracerProvider().Tracer("t").Start(context.Background(), "over grpc")
	span.End()
	require.NoError(t, p.Shutdown(context.Background())) // exports what is buffered
	spans := rcv.Spans()
	require.Len(t, spans, 1)
	require.Equal(t, "over grpc", spans[0].Name)
	require.Equal(t, "grpc-test", spans[0].Service)
}
