package taskhost

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/taskhost/taskhost/internal/tracing"
)

// chains are the task middleware chains of the runtime as handler() builds
// them, over a no-op handler: before tracing and reload existed ("before":
// the mux under the middleware directly), with tracing off (the reload's
// task-limit hook, and nothing of tracing), and with tracing on (an SDK
// that samples every span and exports none).
func chains(tb testing.TB) map[string]asynq.Handler {
	tb.Helper()
	var leaf asynq.Handler = asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })
	log := slog.New(slog.DiscardHandler)
	wrap := func(h asynq.Handler) asynq.Handler {
		h = retryAtSecondMiddleware(h)
		h = timeoutMiddleware(time.Minute)(h)
		h = observeMiddleware(log, nil)(h)
		return recoverMiddleware(log)(h)
	}
	tp := sdktrace.NewTracerProvider()
	tb.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return map[string]asynq.Handler{
		"before":      wrap(leaf),
		"tracing-off": wrap(newTaskLimits(leaf, nil)),
		"tracing-on":  traceMiddleware(tracing.NewTracer(tp))(wrap(newTaskLimits(leaf, nil))),
	}
}

// With tracing off, a task allocates nothing more than before tracing and
// reload existed.
// (AllocsPerRun cannot run in a parallel test.)
func TestTracingOffAllocatesNothingPerTask(t *testing.T) {
	c := chains(t)
	task := asynq.NewTaskWithHeaders("t", []byte("{}"), map[string]string{
		tracing.HeaderTraceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
	ctx := context.Background()
	allocs := func(h asynq.Handler) float64 {
		return testing.AllocsPerRun(200, func() { _ = h.ProcessTask(ctx, task) })
	}
	before, off := allocs(c["before"]), allocs(c["tracing-off"])
	if off > before {
		t.Fatalf("tracing off: %.0f allocations per task, before: %.0f", off, before)
	}
	t.Logf("allocations per task: before %.0f, tracing off %.0f, tracing on %.0f", before, off, allocs(c["tracing-on"]))
}

// BenchmarkTaskChain times one task through the middleware chain; compare
// tracing-off with before (the ratio is the per-task cost of tracing off).
func BenchmarkTaskChain(b *testing.B) {
	c := chains(b)
	task := asynq.NewTaskWithHeaders("t", []byte("{}"), map[string]string{
		tracing.HeaderTraceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
	ctx := context.Background()
	for _, name := range []string{"before", "tracing-off", "tracing-on"} {
		h := c[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = h.ProcessTask(ctx, task)
			}
		})
	}
}
