package tracing_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskhost/taskhost/internal/tracing"
)

func recorder(t *testing.T) (*tracing.Tracer, *tracetest.SpanRecorder, trace.Tracer) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tracing.NewTracer(tp), rec, tp.Tracer("test")
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value.Emit()
	}
	return m
}

func TestSendInjectsAndExtractIsTheParent(t *testing.T) {
	t.Parallel()
	tr, rec, app := recorder(t)
	ctx, root := app.Start(context.Background(), "request")
	headers := map[string]string{"x": "y"}
	_, send := tr.StartSend(ctx, tracing.SourceClient, "email:send", "critical", "", headers)
	tracing.EndSend(send, "id-1", true, nil)
	root.End()
	require.Contains(t, headers, tracing.HeaderTraceparent)
	require.Equal(t, "y", headers["x"])

	spans := rec.Ended()
	require.Len(t, spans, 2)
	s := spans[0]
	require.Equal(t, "send critical", s.Name())
	require.Equal(t, trace.SpanKindProducer, s.SpanKind())
	require.Equal(t, root.SpanContext().SpanID(), s.Parent().SpanID())
	a := attrs(s)
	require.Equal(t, "asynq", a["messaging.system"])
	require.Equal(t, "send", a["messaging.operation.type"])
	require.Equal(t, "critical", a["messaging.destination.name"])
	require.Equal(t, "id-1", a["messaging.message.id"])
	require.Equal(t, "email:send", a["taskhost.task.type"])
	require.Equal(t, "true", a["taskhost.outbox.held"])

	// The header's context is the send span's.
	got := trace.SpanContextFromContext(tracing.Extract(context.Background(), headers))
	require.True(t, got.IsRemote())
	require.Equal(t, s.SpanContext().SpanID(), got.SpanID())
	require.Equal(t, s.SpanContext().TraceID(), got.TraceID())
}

func TestNoContextWritesNothing(t *testing.T) {
	t.Parallel()
	headers := map[string]string{}
	tracing.Inject(context.Background(), headers)
	require.Empty(t, headers)
	ctx := context.Background()
	require.Equal(t, ctx, tracing.Extract(ctx, nil))
	require.Equal(t, ctx, tracing.Extract(ctx, map[string]string{"other": "1"}))
}

func TestReplayIsANewRootLinkedToTheEnqueue(t *testing.T) {
	t.Parallel()
	tr, rec, _ := recorder(t)
	headers := map[string]string{}
	_, send := tr.StartSend(context.Background(), tracing.SourceClient, "t", "default", "id", headers)
	send.End()
	_, replay := tr.StartReplay(context.Background(), "t", "default", "id", headers)
	tracing.EndSend(replay, "id", false, errors.New("boom"))
	r := rec.Ended()[1]
	require.False(t, r.Parent().IsValid())
	require.NotEqual(t, send.SpanContext().TraceID(), r.SpanContext().TraceID())
	require.Len(t, r.Links(), 1)
	require.Equal(t, send.SpanContext().SpanID(), r.Links()[0].SpanContext.SpanID())
	require.Equal(t, "true", attrs(r)["taskhost.outbox.replay"])
	require.Equal(t, codes.Error, r.Status().Code)
}

func TestProcessOutcomes(t *testing.T) {
	t.Parallel()
	tr, rec, _ := recorder(t)
	task := asynq.NewTaskWithHeaders("t", []byte("abc"), nil)
	_, span := tr.StartProcess(context.Background(), task)
	tracing.EndProcess(span, "rate_limited", nil)
	_, span = tr.StartProcess(context.Background(), task)
	tracing.EndProcess(span, "failure", errors.New("no"))
	ended := rec.Ended()
	require.Equal(t, codes.Unset, ended[0].Status().Code, "a rate-limited task is not an error")
	require.Equal(t, "rate_limited", attrs(ended[0])["taskhost.task.outcome"])
	require.Equal(t, "3", attrs(ended[0])["messaging.message.body.size"])
	require.Equal(t, trace.SpanKindConsumer, ended[1].SpanKind())
	require.Equal(t, codes.Error, ended[1].Status().Code)
	require.Equal(t, "failure", attrs(ended[1])["taskhost.task.outcome"])
	require.NotEmpty(t, attrs(ended[1])["error.type"])
	require.Len(t, ended[1].Events(), 1, "the error is recorded")
}

func TestLogHandlerAddsIDsInASpanOnly(t *testing.T) {
	t.Parallel()
	_, _, app := recorder(t)
	var buf bytes.Buffer
	log := slog.New(tracing.LogHandler(slog.NewTextHandler(&buf, nil))).With("component", "x")
	log.Info("outside")
	ctx, span := app.Start(context.Background(), "s")
	log.InfoContext(ctx, "inside", "k", "v")
	span.End()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	require.NotContains(t, lines[0], "trace_id")
	require.Contains(t, lines[1], "component=x k=v trace_id="+span.SpanContext().TraceID().String()+" span_id="+span.SpanContext().SpanID().String())
	h := tracing.LogHandler(slog.DiscardHandler)
	require.Equal(t, h, tracing.LogHandler(h), "wrapping twice is wrapping once")
}
