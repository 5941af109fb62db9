package tracing_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/internal/tracing"
)

// Redis commands get a span under the caller's span only, without their
// arguments.
func TestInstrumentRedisSpansCommandsUnderASpanOnly(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	rdb := redistest.Client(t, s.Addr())
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	require.NoError(t, tracing.InstrumentRedis(rdb, tp))

	ctx := context.Background()
	require.NoError(t, rdb.Set(ctx, "outside", "secret-value", 0).Err())
	require.Empty(t, rec.Ended(), "no span without a parent")

	ctx, task := tp.Tracer("t").Start(ctx, "task")
	require.NoError(t, rdb.Get(ctx, "outside").Err())
	task.End()
	ended := rec.Ended()
	require.Len(t, ended, 2)
	cmd := ended[0]
	require.Equal(t, "get", cmd.Name())
	require.Equal(t, task.SpanContext().SpanID(), cmd.Parent().SpanID())
	for _, kv := range cmd.Attributes() {
		require.NotContains(t, kv.Value.Emit(), "outside", "no command arguments: %s", kv.Key)
	}
}
