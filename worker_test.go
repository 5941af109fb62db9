package taskhost_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/plugins"
	_ "github.com/taskhost/taskhost/plugins/webhook"
)

// These tests drive the worker the way an app does: tasks come from a plain
// asynq client, and their outcome is read back through asynq's Inspector.

// wkLog is a goroutine-safe log sink.
type wkLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *wkLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *wkLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// wkHits is an httptest server that records the time of each request per
// path and answers with the handler the test gives for the path.
type wkHits struct {
	srv *httptest.Server
	mu  sync.Mutex
	at  map[string][]time.Time
}

func newWkHits(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, n int)) *wkHits {
	t.Helper()
	h := &wkHits{at: map[string][]time.Time{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.at[r.URL.Path] = append(h.at[r.URL.Path], time.Now())
		n := len(h.at[r.URL.Path])
		h.mu.Unlock()
		answer(w, r, n)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *wkHits) times(path string) []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Time(nil), h.at[path]...)
}

func (h *wkHits) total() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, ts := range h.at {
		n += len(ts)
	}
	return n
}

// webhookTask is a webhook:deliver task that posts to url.
func webhookTask(t *testing.T, url string) *asynq.Task {
	t.Helper()
	payload, err := json.Marshal(map[string]any{"url": url, "method": "POST", "body": `{"hello":"world"}`})
	require.NoError(t, err)
	return asynq.NewTask("webhook:deliver", payload)
}

// webhookConfig is testConfig with the webhook plugin allowed to reach
// loopback (httptest servers) and short retries.
func webhookConfig(t *testing.T, addr string) taskhost.Config {
	t.Helper()
	cfg := testConfig(t, addr)
	cfg.Worker.RetryBaseDelay = 100 * time.Millisecond
	cfg.Worker.RetryMaxDelay = time.Second
	cfg.Plugins = map[string]map[string]any{"webhook": {"allow_hosts": []any{"127.0.0.0/8"}}}
	return cfg
}

// asynqClient is a plain asynq client and inspector on addr, closed in Cleanup.
func asynqClient(t *testing.T, addr string) (*asynq.Client, *asynq.Inspector) {
	t.Helper()
	c := asynq.NewClient(asynq.RedisClientOpt{Addr: addr})
	ins := asynq.NewInspector(asynq.RedisClientOpt{Addr: addr})
	t.Cleanup(func() { _ = c.Close(); _ = ins.Close() })
	return c, ins
}

// waitTask waits up to d for the task to reach state want and returns its
// info. A failure reports the last state and error seen.
func waitTask(t *testing.T, ins *asynq.Inspector, queue, id string, want asynq.TaskState, d time.Duration) *asynq.TaskInfo {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for {
		info, err := ins.GetTaskInfo(queue, id)
		switch {
		case err != nil:
			last = err.Error()
		case info.State == want:
			return info
		default:
			last = fmt.Sprintf("state %s, retried %d, last error %q", info.State, info.Retried, info.LastErr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s did not become %s within %s: %s", id, want, d, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWebhookOutcomesFromPlainAsynqClient(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	hits := newWkHits(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusNoContent)
		case "/flaky": // 5xx, then 2xx
			if n == 1 {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			w.WriteHeader(http.StatusOK)
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
		case "/busy": // 429 with Retry-After: 1, then 2xx
			if n == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusTeapot)
		}
	})
	rt := startRuntime(t, webhookConfig(t, s.Addr()))
	waitState(t, rt, 5*time.Second, "ready")

	client, ins := asynqClient(t, s.Addr())
	ids := map[string]string{}
	for _, path := range []string{"/ok", "/flaky", "/missing", "/busy"} {
		info, err := client.Enqueue(webhookTask(t, hits.srv.URL+path), asynq.MaxRetry(3), asynq.Retention(time.Hour))
		require.NoError(t, err)
		ids[path] = info.ID
	}

	ok := waitTask(t, ins, "default", ids["/ok"], asynq.TaskStateCompleted, 10*time.Second)
	require.Zero(t, ok.Retried)
	require.Len(t, hits.times("/ok"), 1)

	flaky := waitTask(t, ins, "default", ids["/flaky"], asynq.TaskStateCompleted, 10*time.Second)
	require.Equal(t, 1, flaky.Retried, "one failure, then success")
	require.Len(t, hits.times("/flaky"), 2)

	missing := waitTask(t, ins, "default", ids["/missing"], asynq.TaskStateArchived, 10*time.Second)
	require.Contains(t, missing.LastErr, "404", "the status is the reason")
	require.Zero(t, missing.Retried, "a 404 is archived at once")
	require.Len(t, hits.times("/missing"), 1)

	busy := waitTask(t, ins, "default", ids["/busy"], asynq.TaskStateCompleted, 10*time.Second)
	require.Zero(t, busy.Retried, "a 429 is not counted as a failure")
	at := hits.times("/busy")
	require.Len(t, at, 2)
	require.GreaterOrEqual(t, at[1].Sub(at[0]), time.Second, "Retry-After: 1 is honoured, never early")
}

// wkFaults is a test plugin with a typed handler and a panicking one.
type wkFaults struct{}

type wkArgs struct {
	N int `json:"n"`
}

func (wkFaults) PluginInfo() plugins.Info {
	return plugins.Info{ID: "wk-faults", New: func() plugins.Plugin { return wkFaults{} }}
}

func (wkFaults) Provision(_ context.Context, h plugins.Host) error {
	plugins.Handle(h, "wk:typed", func(context.Context, wkArgs) error { return nil })
	h.HandleFunc("wk:panic", func(context.Context, *asynq.Task) error { wkBoom(); return nil })
	return nil
}

// wkBoom is named so the logged stack can be checked for it.
func wkBoom() { panic("wk boom") }

func init() { plugins.Register(wkFaults{}) }

func TestMalformedPayloadAndPanicThenKeepsProcessing(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	cfg := testConfig(t, s.Addr())
	cfg.Log.Level = "info"
	cfg.Plugins = map[string]map[string]any{"wk-faults": {}}
	logs := &wkLog{}
	rt := startRuntime(t, cfg, logs)
	waitState(t, rt, 5*time.Second, "ready")
	client, ins := asynqClient(t, s.Addr())

	bad, err := client.Enqueue(asynq.NewTask("wk:typed", []byte(`{"n":"seven"}`)), asynq.MaxRetry(5), asynq.Retention(time.Hour))
	require.NoError(t, err)
	boom, err := client.Enqueue(asynq.NewTask("wk:panic", nil), asynq.MaxRetry(0), asynq.Retention(time.Hour))
	require.NoError(t, err)

	archived := waitTask(t, ins, "default", bad.ID, asynq.TaskStateArchived, 10*time.Second)
	require.Zero(t, archived.Retried, "a malformed payload is archived without retries")
	require.Contains(t, archived.LastErr, "malformed payload")
	require.Contains(t, archived.LastErr, "cannot unmarshal string", "the decode error is the reason")

	panicked := waitTask(t, ins, "default", boom.ID, asynq.TaskStateArchived, 10*time.Second)
	require.Contains(t, panicked.LastErr, "handler panic: wk boom")
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "handler panic recovered") },
		2*time.Second, 10*time.Millisecond)
	log := logs.String()
	require.Contains(t, log, "goroutine ", "the stack is logged")
	require.Contains(t, log, "wkBoom", "the stack names the panicking function")
	require.Contains(t, log, "outcome=panic")

	good, err := client.Enqueue(asynq.NewTask("wk:typed", []byte(`{"n":7}`)), asynq.Retention(time.Hour))
	require.NoError(t, err)
	waitTask(t, ins, "default", good.ID, asynq.TaskStateCompleted, 10*time.Second)
	require.True(t, rt.Fetching())
}

func TestRedisKilledAndRestartedWithAOF(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{AOF: true, AppendFsync: "always"})
	hits := newWkHits(t, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusOK) })
	rt := startRuntime(t, webhookConfig(t, s.Addr()))
	waitState(t, rt, 5*time.Second, "ready")

	var mu sync.Mutex
	var seen []string
	unsub := rt.Subscribe(func(_, to taskhost.State) {
		mu.Lock()
		seen = append(seen, to.String())
		mu.Unlock()
	})
	t.Cleanup(unsub)

	// Due shortly, so that no task can run before the kill.
	client, ins := asynqClient(t, s.Addr())
	const n = 20
	ids := make([]string, n)
	for i := range ids {
		info, err := client.Enqueue(webhookTask(t, fmt.Sprintf("%s/t/%d", hits.srv.URL, i)),
			asynq.ProcessIn(1500*time.Millisecond), asynq.Retention(time.Hour))
		require.NoError(t, err)
		ids[i] = info.ID
	}
	s.Kill()
	require.Zero(t, hits.total(), "no task ran before the kill")
	waitState(t, rt, 5*time.Second, "down")

	s.MustRestart(t)
	waitState(t, rt, 5*time.Second, "ready")
	for i, id := range ids {
		waitTask(t, ins, "default", id, asynq.TaskStateCompleted, 15*time.Second)
		require.Len(t, hits.times(fmt.Sprintf("/t/%d", i)), 1, "task %d delivered once", i)
	}
	require.True(t, rt.Fetching(), "the same worker, still fetching")
	mu.Lock()
	defer mu.Unlock()
	require.Contains(t, seen, "down")
	require.Equal(t, "ready", seen[len(seen)-1])
}
