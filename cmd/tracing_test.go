package taskhostcmd_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/internal/tracetest"
)

// These tests follow one task across real processes: a producer (the
// tracetest producer program, or `worker enqueue`) and a worker, both
// exporting to an OTLP/HTTP receiver on loopback.

var (
	producerOnce sync.Once
	producerPath string
	producerErr  error
)

// producerBinary builds internal/tracetest/producer next to the worker binary.
func producerBinary(t *testing.T) string {
	t.Helper()
	dir := filepath.Dir(workerBinary(t))
	producerOnce.Do(func() {
		producerPath = filepath.Join(dir, "producer")
		out, err := exec.Command("go", "build", "-o", producerPath, "../internal/tracetest/producer").CombinedOutput()
		if err != nil {
			producerErr = fmt.Errorf("go build ./internal/tracetest/producer: %w\n%s", err, out)
		}
	})
	if producerErr != nil {
		t.Fatal(producerErr)
	}
	return producerPath
}

// producerLine is what the producer prints after its enqueue.
type producerLine struct {
	ID       string `json:"id"`
	Held     bool   `json:"held"`
	TraceID  string `json:"trace_id"`
	RootSpan string `json:"root_span"`
}

// runProducer starts the producer with env and args and returns it with
// the line it printed.
func runProducer(t *testing.T, env []string, args ...string) (*worker, producerLine) {
	t.Helper()
	p := startBinary(t, producerBinary(t), env, args...)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.stdout.String(), "\n") {
		select {
		case <-p.done:
			t.Fatalf("producer exited: %v\nstderr:\n%s", p.err, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("producer printed nothing within 20s; stderr:\n%s", p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var line producerLine
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(p.stdout.String())), &line))
	return p, line
}

// otelEnv points a process's exporter at rcv, exporting every 50 ms.
func otelEnv(rcv *tracetest.Receiver, service string) []string {
	return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.URL(), "OTEL_BSP_SCHEDULE_DELAY=50", "OTEL_SERVICE_NAME=" + service}
}

func hookPayload(t *testing.T, url string) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{"url": url})
	require.NoError(t, err)
	return string(b)
}

// processSpan waits for the worker's span of task id.
func processSpan(t *testing.T, rcv *tracetest.Receiver, id string) tracetest.Span {
	t.Helper()
	return rcv.Wait(t, 15*time.Second, "process of "+id, func(s tracetest.Span) bool {
		return s.Service == "worker" && s.Kind == "SPAN_KIND_CONSUMER" && s.Attr("messaging.message.id") == id
	})
}

// sendSpan waits for the producer span of task id from service.
func sendSpan(t *testing.T, rcv *tracetest.Receiver, service, id string, replay bool) tracetest.Span {
	t.Helper()
	return rcv.Wait(t, 15*time.Second, "send of "+id, func(s tracetest.Span) bool {
		return s.Service == service && s.Kind == "SPAN_KIND_PRODUCER" && s.Attr("messaging.message.id") == id &&
			(s.Attr("taskhost.outbox.replay") == "true") == replay
	})
}

// taskLogLine waits for the worker's "task done" line of task id.
func taskLogLine(t *testing.T, w *worker, id string) string {
	t.Helper()
	w.waitLog(t, "task_id="+id, 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, l := range strings.Split(w.stderr.String(), "\n") {
			if strings.Contains(l, `msg="task done"`) && strings.Contains(l, "task_id="+id) {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no task done line for %s:\n%s", id, w.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tracedWorker starts a Redis, an OTLP receiver, a webhook target and a
// ready worker that exports to the receiver, with more environment.
func tracedWorker(t *testing.T, more ...string) (*redistest.Server, *tracetest.Receiver, *hookServer, *worker) {
	t.Helper()
	s := redistest.Start(t)
	rcv := tracetest.Start(t)
	hooks := newHookServer(t, okAnswer)
	w := startWorker(t, workerEnv(s, append(otelEnv(rcv, "worker"), more...)...))
	waitReadyz(t, w.healthURL(t), http.StatusOK, 10*time.Second)
	return s, rcv, hooks, w
}

func TestTracesFollowATaskAcrossProcesses(t *testing.T) {
	t.Parallel()
	s, rcv, hooks, w := tracedWorker(t, "LOG_LEVEL=debug") // a success's task line is at debug
	prodEnv := append([]string{"REDIS_URL=" + s.URL()}, otelEnv(rcv, "producer")...)
	var traces []string

	t.Run("taskhost client", func(t *testing.T) {
		p, line := runProducer(t, prodEnv, "-mode", "client", "-payload", hookPayload(t, hooks.URL+"/client"))
		require.False(t, line.Held)
		hooks.waitCount(t, "/client", 1, 10*time.Second)
		proc := processSpan(t, rcv, line.ID)
		send := sendSpan(t, rcv, "producer", line.ID, false)

		require.Equal(t, send.TraceID, proc.TraceID, "one trace from producer to handler")
		require.Equal(t, send.SpanID, proc.ParentSpanID, "the handler's span is the enqueue's child")
		require.Equal(t, line.RootSpan, send.ParentSpanID, "the enqueue is the child of the application's span")
		require.Equal(t, "send default", send.Name)
		require.Equal(t, "client", send.Attr("taskhost.enqueue.source"))
		require.Equal(t, "process default", proc.Name)
		for k, v := range map[string]string{
			"messaging.system": "asynq", "messaging.destination.name": "default", "messaging.operation.type": "process",
			"messaging.operation.name": "process", "taskhost.task.type": "webhook:deliver",
			"taskhost.task.retry_count": "0", "taskhost.task.outcome": "success",
		} {
			require.Equal(t, v, proc.Attr(k), "attribute %s of %s", k, proc)
		}
		require.NotEqual(t, "STATUS_CODE_ERROR", proc.StatusCode)
		// The webhook plugin's own span nests under the task's.
		post := rcv.Wait(t, 10*time.Second, "the webhook's HTTP span", func(s tracetest.Span) bool {
			return s.Kind == "SPAN_KIND_CLIENT" && s.ParentSpanID == proc.SpanID
		})
		require.Equal(t, "POST", post.Name)
		require.Equal(t, "200", post.Attr("http.response.status_code"))

		// The worker's log line for the task carries the IDs the receiver saw.
		l := taskLogLine(t, w, line.ID)
		require.Contains(t, l, "trace_id="+proc.TraceID)
		require.Contains(t, l, "span_id="+proc.SpanID)

		p.signal(t, syscall.SIGTERM)
		require.Equal(t, 0, p.wait(t, 20*time.Second))
		traces = append(traces, proc.TraceID)
		t.Logf("the receiver saw:\n%s\nthe worker logged:\n%s", rcv.Tree(proc.TraceID), l)
	})

	t.Run("plain asynq client with InjectTrace", func(t *testing.T) {
		p, line := runProducer(t, prodEnv, "-mode", "plain", "-payload", hookPayload(t, hooks.URL+"/plain"))
		hooks.waitCount(t, "/plain", 1, 10*time.Second)
		proc := processSpan(t, rcv, line.ID)
		require.Equal(t, line.TraceID, proc.TraceID)
		require.Equal(t, line.RootSpan, proc.ParentSpanID, "the handler's span is the child of the span the application enqueued in")
		p.signal(t, syscall.SIGTERM)
		require.Equal(t, 0, p.wait(t, 20*time.Second))
		traces = append(traces, proc.TraceID)
	})

	t.Run("worker enqueue", func(t *testing.T) {
		env := append([]string{"REDIS_URL=" + s.URL()}, otelEnv(rcv, "cli")...)
		code, stdout, stderr := runWorker(t, env, "enqueue", "-type", "webhook:deliver", "-payload", hookPayload(t, hooks.URL+"/cli"))
		require.Equal(t, 0, code, stderr)
		var id, traceID string
		for _, f := range strings.Fields(stdout) {
			if v, ok := strings.CutPrefix(f, "id="); ok {
				id = v
			}
			if v, ok := strings.CutPrefix(f, "trace_id="); ok {
				traceID = v
			}
		}
		require.NotEmpty(t, traceID, "worker enqueue prints the trace ID: %s", stdout)
		hooks.waitCount(t, "/cli", 1, 10*time.Second)
		proc := processSpan(t, rcv, id)
		send := sendSpan(t, rcv, "cli", id, false)
		require.Equal(t, traceID, send.TraceID)
		require.Equal(t, send.SpanID, proc.ParentSpanID)
		require.Equal(t, "cli", send.Attr("taskhost.enqueue.source"))
		traces = append(traces, proc.TraceID)
	})

	t.Run("no context starts a new trace", func(t *testing.T) {
		client, _ := queueClients(t, s.Addr())
		info, err := client.Enqueue(deliverTask(t, hooks.URL+"/bare"))
		require.NoError(t, err)
		hooks.waitCount(t, "/bare", 1, 10*time.Second)
		proc := processSpan(t, rcv, info.ID)
		require.Empty(t, proc.ParentSpanID, "a task without trace headers is the root of its trace")
		require.False(t, slices.Contains(traces, proc.TraceID), "a new trace")
	})

	w.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, w.wait(t, 20*time.Second))
}

// A task enqueued through taskhost's client while Redis is down waits in the
// outbox with its trace context; after Redis returns, the replay is a span
// linked to the enqueue, and the handler is still the enqueue's child.
func TestTraceOfATaskHeldInTheOutbox(t *testing.T) {
	t.Parallel()
	s, rcv, hooks, w := tracedWorker(t)

	s.Kill()
	prodEnv := append([]string{"REDIS_URL=" + s.URL()}, otelEnv(rcv, "producer")...)
	p, line := runProducer(t, prodEnv, "-mode", "client", "-wait-ready=false", "-payload", hookPayload(t, hooks.URL+"/held"))
	require.True(t, line.Held, "Redis is down: the task waits in the outbox")
	send := sendSpan(t, rcv, "producer", line.ID, false)
	require.Equal(t, "true", send.Attr("taskhost.outbox.held"))

	s.MustRestart(t)
	hooks.waitCount(t, "/held", 1, 30*time.Second)
	proc := processSpan(t, rcv, line.ID)
	replay := sendSpan(t, rcv, "producer", line.ID, true)

	require.Equal(t, send.TraceID, proc.TraceID, "the held task keeps its trace")
	require.Equal(t, send.SpanID, proc.ParentSpanID, "the handler's span is the enqueue's child after the replay")
	require.Empty(t, replay.ParentSpanID, "the replay is a trace of its own")
	require.Contains(t, replay.Links, tracetest.Link{TraceID: send.TraceID, SpanID: send.SpanID}, "linked to the enqueue")

	p.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, p.wait(t, 20*time.Second))
	w.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, w.wait(t, 20*time.Second))
}

// With tracing off, even with an endpoint set, nothing is exported, nothing
// is dialled, and log lines carry no trace IDs.
func TestTracingOffDialsNothing(t *testing.T) {
	t.Parallel()
	s, rcv, hooks, w := tracedWorker(t, "OTEL_SDK_DISABLED=true")
	off := append(otelEnv(rcv, "cli"), "OTEL_SDK_DISABLED=true")

	code, stdout, stderr := runWorker(t, append([]string{"REDIS_URL=" + s.URL()}, off...),
		"enqueue", "-type", "webhook:deliver", "-payload", hookPayload(t, hooks.URL+"/off"))
	require.Equal(t, 0, code, stderr)
	require.NotContains(t, stdout, "trace_id")
	hooks.waitCount(t, "/off", 1, 10*time.Second)
	client, _ := queueClients(t, s.Addr())
	_, err := client.Enqueue(deliverTask(t, hooks.URL+"/off2"))
	require.NoError(t, err)
	hooks.waitCount(t, "/off2", 1, 10*time.Second)

	w.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, w.wait(t, 20*time.Second))
	require.Zero(t, rcv.Connections(), "nothing dialled the receiver")
	require.NotContains(t, w.stderr.String(), "trace_id=")
	require.NotContains(t, w.stderr.String(), "tracing on")
}

func TestTracingEnvironmentErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  []string
		want []string
	}{
		{[]string{"OTEL_EXPORTER_OTLP_PROTOCOL=http/json", "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1"}, []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf or grpc"}},
		{[]string{"OTEL_EXPORTER_OTLP_ENDPOINT=127.0.0.1:4318"}, []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://"}},
		{[]string{"OTEL_TRACES_SAMPLER=sometimes"}, []string{"OTEL_TRACES_SAMPLER", "parentbased_traceidratio"}},
		{[]string{"OTEL_TRACES_SAMPLER=traceidratio", "OTEL_TRACES_SAMPLER_ARG=2"}, []string{"OTEL_TRACES_SAMPLER_ARG"}},
		{[]string{"OTEL_SDK_DISABLED=maybe"}, []string{"OTEL_SDK_DISABLED"}},
		{[]string{"OTEL_EXPORTER_OTLP_HEADERS=api-key-s3cr3t"}, []string{"OTEL_EXPORTER_OTLP_HEADERS"}},
		{[]string{"TRACING_ENABLED=perhaps"}, []string{"tracing.enabled"}},
	} {
		t.Run(tc.env[0], func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runWorker(t, append([]string{"REDIS_URL=redis://127.0.0.1:1/0"}, tc.env...), "-check-config")
			require.Equal(t, 2, code, "stdout: %s\nstderr: %s", stdout, stderr)
			for _, w := range tc.want {
				require.Contains(t, stderr, w)
			}
			require.NotContains(t, stderr, "s3cr3t", "a header value is never shown")
		})
	}
}

var _ = asynq.NewTask
