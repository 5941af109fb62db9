package taskhost_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/plugins"
)

// trPlugin records the span its handlers run in, logs in the task's
// context, schedules a tick, and fails or panics on demand.
type trPlugin struct{}

var trSeen = struct {
	sync.Mutex
	spans map[string]trace.SpanContext // by task ID
}{spans: map[string]trace.SpanContext{}}

func trSpanOf(id string) (trace.SpanContext, bool) {
	trSeen.Lock()
	defer trSeen.Unlock()
	sc, ok := trSeen.spans[id]
	return sc, ok
}

func (trPlugin) PluginInfo() plugins.Info {
	return plugins.Info{ID: "tr-plugin", New: func() plugins.Plugin { return trPlugin{} }}
}

func (trPlugin) Provision(_ context.Context, h plugins.Host) error {
	log := h.Logger()
	record := func(ctx context.Context) {
		id, _ := asynq.GetTaskID(ctx)
		trSeen.Lock()
		trSeen.spans[id] = trace.SpanContextFromContext(ctx)
		trSeen.Unlock()
		log.InfoContext(ctx, "plugin line")
		// A plugin's own span nests under the task's.
		_, child := trace.SpanFromContext(ctx).TracerProvider().Tracer("tr-plugin").Start(ctx, "plugin work")
		child.End()
	}
	h.HandleFunc("tr:ok", func(ctx context.Context, _ *asynq.Task) error { record(ctx); return nil })
	h.HandleFunc("tr:fail", func(ctx context.Context, _ *asynq.Task) error { record(ctx); return errors.New("tr failed") })
	h.HandleFunc("tr:panic", func(ctx context.Context, _ *asynq.Task) error { record(ctx); panic("tr boom") })
	h.HandleFunc("tr:tick", func(ctx context.Context, _ *asynq.Task) error { record(ctx); return nil })
	_, err := h.Schedule("@every 1s", asynq.NewTask("tr:tick", nil))
	return err
}

func init() { plugins.Register(trPlugin{}) }

func ended(rec *tracetest.SpanRecorder, match func(sdktrace.ReadOnlySpan) bool) (sdktrace.ReadOnlySpan, bool) {
	for _, s := range rec.Ended() {
		if match(s) {
			return s, true
		}
	}
	return nil, false
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

func waitSpan(t *testing.T, rec *tracetest.SpanRecorder, what string, match func(sdktrace.ReadOnlySpan) bool) sdktrace.ReadOnlySpan {
	t.Helper()
	var got sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		var ok bool
		got, ok = ended(rec, match)
		return ok
	}, 10*time.Second, 10*time.Millisecond, "no span %s", what)
	return got
}

func byID(name, id string) func(sdktrace.ReadOnlySpan) bool {
	return func(s sdktrace.ReadOnlySpan) bool {
		return strings.HasPrefix(s.Name(), name) && attr(s, "messaging.message.id") == id
	}
}

// With the program's own provider, the runtime's client, plugins and
// scheduler are traced, and the task's context carries the span.
func TestRuntimeTracesEnqueueTaskAndSchedule(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	cfg := testConfig(t, s.Addr())
	cfg.Log.Level = "info"
	cfg.Plugins = map[string]map[string]any{"tr-plugin": {}}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	var logs wkLog
	rt, err := taskhost.New(cfg, taskhost.Options{Logger: taskhost.NewLogger(cfg.Log, &logs), TracerProvider: tp})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, rt.Stop(context.Background())) })
	waitState(t, rt, 5*time.Second, "ready")
	require.Equal(t, tp, rt.TracerProvider())

	ctx, app := tp.Tracer("app").Start(context.Background(), "request")
	ok, err := rt.Client().EnqueueContext(ctx, asynq.NewTask("tr:ok", nil), asynq.Queue("default"))
	require.NoError(t, err)
	fail, err := rt.Client().EnqueueContext(ctx, asynq.NewTask("tr:fail", nil), asynq.MaxRetry(0))
	require.NoError(t, err)
	boom, err := rt.Client().EnqueueContext(ctx, asynq.NewTask("tr:panic", nil), asynq.MaxRetry(0))
	require.NoError(t, err)
	app.End()

	send := waitSpan(t, rec, "send", byID("send", ok.ID))
	proc := waitSpan(t, rec, "process", byID("process", ok.ID))
	require.Equal(t, app.SpanContext().SpanID(), send.Parent().SpanID())
	require.Equal(t, send.SpanContext().SpanID(), proc.Parent().SpanID())
	require.Equal(t, send.SpanContext().TraceID(), proc.SpanContext().TraceID())
	require.Equal(t, "success", attr(proc, "taskhost.task.outcome"))
	sc, _ := trSpanOf(ok.ID)
	require.Equal(t, proc.SpanContext().SpanID(), sc.SpanID(), "the handler's ctx holds the task's span")
	child := waitSpan(t, rec, "plugin work", func(s sdktrace.ReadOnlySpan) bool {
		return s.Name() == "plugin work" && s.Parent().SpanID() == proc.SpanContext().SpanID()
	})
	require.Equal(t, proc.SpanContext().TraceID(), child.SpanContext().TraceID())
	require.Contains(t, logs.String(), `msg="plugin line" component=plugin plugin=tr-plugin trace_id=`+proc.SpanContext().TraceID().String()+" span_id="+proc.SpanContext().SpanID().String())

	failed := waitSpan(t, rec, "failed process", byID("process", fail.ID))
	require.Equal(t, "archived", attr(failed, "taskhost.task.outcome"))
	require.Equal(t, "Error", failed.Status().Code.String())
	panicked := waitSpan(t, rec, "panicked process", byID("process", boom.ID))
	require.Equal(t, "panic", attr(panicked, "taskhost.task.outcome"))
	require.Contains(t, panicked.Status().Description, "tr boom")
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "handler panic recovered") }, 5*time.Second, 10*time.Millisecond)
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "handler panic recovered") {
			require.Contains(t, l, "trace_id="+panicked.SpanContext().TraceID().String(), "the panic report carries the task's trace")
		}
	}

	// A schedule's tick is the root of a trace with the handler as its child.
	tick := waitSpan(t, rec, "scheduled send", func(s sdktrace.ReadOnlySpan) bool {
		return attr(s, "taskhost.enqueue.source") == "schedule" && attr(s, "messaging.message.id") != ""
	})
	require.False(t, tick.Parent().IsValid())
	tickProc := waitSpan(t, rec, "tick process", byID("process", attr(tick, "messaging.message.id")))
	require.Equal(t, tick.SpanContext().SpanID(), tickProc.Parent().SpanID())
}

// With tracing off (the default) there is no span anywhere.
func TestRuntimeWithoutTracing(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	cfg := testConfig(t, s.Addr())
	cfg.Plugins = map[string]map[string]any{"tr-plugin": {}}
	rt := startRuntime(t, cfg)
	waitState(t, rt, 5*time.Second, "ready")
	_, isSDK := rt.TracerProvider().(*sdktrace.TracerProvider)
	require.False(t, isSDK, "no SDK is built")
	info, err := rt.Client().Enqueue(asynq.NewTask("tr:ok", nil))
	require.NoError(t, err)
	require.Empty(t, info.Headers, "nothing is added to the task")
	require.Eventually(t, func() bool { _, ok := trSpanOf(info.ID); return ok }, 10*time.Second, 10*time.Millisecond)
	sc, _ := trSpanOf(info.ID)
	require.False(t, sc.IsValid(), "no span in the handler's ctx")
}
