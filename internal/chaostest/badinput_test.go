package chaostest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
)

// bigPayload is the size of the large-payload cases that the worker
// processes: within worker.max_payload_bytes (1 MiB by default) with room
// for the JSON around it. hugePayload is over the bound.
const (
	bigPayload  = 900 << 10
	hugePayload = 10 << 20
)

// TestBadInput sends a real worker malformed payloads, payloads near and far
// over worker.max_payload_bytes, and a task type nothing handles. Malformed
// payloads are archived at once, 10 MB payloads are archived unread with
// their reason, payloads within the bound are processed, the unknown type is
// archived after its retries, and the worker goes on processing.
func TestBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos suite: skipped with -short")
	}
	t.Parallel()
	h := setup(t)

	var hookBytes atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		hookBytes.Store(n)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)

	h.startWorkers(1, h.workerConfig(4, 0, "  webhook:\n    allow_hosts: [\"127.0.0.1\"]\n"))
	w := h.workers[0]
	client := asynq.NewClientFromRedisClient(h.qrdb)
	t.Cleanup(func() { _ = client.Close() })
	enqueue := func(id, typ string, payload []byte, opts ...asynq.Option) {
		t.Helper()
		_, err := client.Enqueue(asynq.NewTask(typ, payload), append(opts, asynq.TaskID(id))...)
		require.NoError(t, err, id)
	}

	// Malformed payloads: archived at once, without a retry.
	malformed := map[string]struct{ typ, payload string }{
		"bad-not-json":      {"chaos:record", "not json"},
		"bad-wrong-type":    {"chaos:record", `{"seq":"x"}`},
		"bad-unknown-field": {"chaos:record", `{"seq":1,"extra":true}`},
		"bad-empty":         {"chaos:record", ""},
		"bad-invalid":       {"chaos:record", `{"seq":-1}`},
		"bad-trailing":      {"chaos:record", `{"seq":1} {"seq":2}`},
		"wh-bad-scheme":     {"webhook:deliver", `{"url":"ftp://example.com/"}`},
		"wh-no-url":         {"webhook:deliver", `{}`},
		"wh-array":          {"webhook:deliver", `[1,2,3]`},
		"wh-bad-method":     {"webhook:deliver", `{"url":"http://127.0.0.1:1/","method":"GE T"}`},
	}
	for id, c := range malformed {
		enqueue(id, c.typ, []byte(c.payload))
	}
	// A type no plugin handles: asynq's mux fails it with "handler not
	// found", so it is retried like any failure, then archived.
	enqueue("unknown-type", "chaos:nope", []byte(`{}`), asynq.MaxRetry(1))

	// 10 MB payloads, from a plain asynq client past the bound: archived
	// unread by the queue guard, with the reason.
	oversized := map[string]struct{ typ, payload string }{
		"huge-garbage": {"chaos:record", strings.Repeat("x", hugePayload)},
		"huge-chaos":   {"chaos:record", `{"seq":1,"pad":"` + strings.Repeat("a", hugePayload) + `"}`},
		"huge-webhook": {"webhook:deliver", `{"url":"` + hook.URL + `/hook","body":"` + strings.Repeat("a", hugePayload) + `"}`},
	}
	for id, c := range oversized {
		enqueue(id, c.typ, []byte(c.payload))
	}

	// Payloads of 900 KiB, within the bound, are accepted and processed.
	pad := strings.Repeat("a", bigPayload)
	bigChaos, err := json.Marshal(map[string]any{"seq": 1, "pad": pad})
	require.NoError(t, err)
	bigHook, err := json.Marshal(map[string]any{"url": hook.URL + "/hook", "body": pad})
	require.NoError(t, err)
	begin := time.Now()
	enqueue("big-chaos", "chaos:record", bigChaos)
	enqueue("big-webhook", "webhook:deliver", bigHook)

	// The worker goes on: a good task after all of them runs.
	enqueue("after", "chaos:record", []byte(`{"seq":2}`))

	ctx := context.Background()
	var archived map[string]*asynq.TaskInfo
	state := "not read yet"
	settled := func() bool {
		if err := h.recorder.poll(ctx); err != nil {
			state = err.Error()
			return false
		}
		q, err := h.queueInfo()
		if err != nil {
			state = err.Error()
			return false
		}
		tasks, err := h.insp.ListArchivedTasks("default", asynq.PageSize(100))
		if err != nil {
			state = err.Error()
			return false
		}
		archived = map[string]*asynq.TaskInfo{}
		for _, ti := range tasks {
			archived[ti.ID] = ti
		}
		state = fmt.Sprintf("pending=%d active=%d retry=%d archived=%d of %d, hook bytes %d",
			q.Pending, q.Active, q.Retry, len(archived), len(malformed)+len(oversized)+1, hookBytes.Load())
		return unfinished(q) == 0 && len(archived) == len(malformed)+len(oversized)+1 &&
			h.recorder.done("big-chaos") && h.recorder.done("after") && hookBytes.Load() > 0
	}
	deadline := time.Now().Add(90 * time.Second)
	for !settled() {
		require.True(t, time.Now().Before(deadline), "bad input not settled within 90s: %s\n%s", state, w.logTail(3000))
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(begin)

	for id := range malformed {
		ti := archived[id]
		require.NotNil(t, ti, "%s must be archived", id)
		require.Contains(t, ti.LastErr, "malformed payload", id)
		require.Zero(t, ti.Retried, "%s: a malformed payload is archived without a retry", id)
		require.False(t, h.recorder.done(id), "%s must not reach the handler", id)
	}
	for id := range oversized {
		ti := archived[id]
		require.NotNil(t, ti, "%s must be archived", id)
		require.Contains(t, ti.LastErr, "larger than worker.max_payload_bytes allows", id)
		require.Zero(t, ti.Retried, id)
		require.False(t, h.recorder.done(id), "%s must not reach the handler", id)
	}
	require.Contains(t, archived["unknown-type"].LastErr, "no handler for the task type")
	require.Equal(t, 1, archived["unknown-type"].Retried)

	require.Len(t, h.recorder.byID["big-chaos"], 1)
	require.Equal(t, bigPayload, h.recorder.byID["big-chaos"][0].pad, "the handler saw the whole 900 KiB")
	require.Equal(t, int64(bigPayload), hookBytes.Load(), "the webhook delivered the whole 900 KiB body")
	require.NotContains(t, archived, "big-chaos")
	require.NotContains(t, archived, "big-webhook")

	// Still the same process, alive and ready.
	require.True(t, w.running())
	require.Empty(t, w.unexpectedExits())
	for _, path := range []string{"/livez", "/readyz"} {
		resp, err := http.Get("http://" + h.health[0] + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	hwm := peakRSS(w.pid())
	t.Logf("bad input: %d malformed payloads archived without retry; %d 10 MB tasks archived unread; unknown type archived after %d retry; two 900 KiB tasks processed within %s; worker peak RSS %s",
		len(malformed), len(oversized), archived["unknown-type"].Retried, took.Round(time.Millisecond), hwm)
	require.NotContains(t, w.logTail(1<<20), "panic", "no handler may panic on bad input")

	_, err = w.signal(syscall.SIGTERM)
	require.NoError(t, err)
	code, err := w.wait(workerShutdown + 15*time.Second)
	require.NoError(t, err)
	require.Equal(t, 0, code, w.logTail(2000))
	http.DefaultClient.CloseIdleConnections()
}

// peakRSS reads VmHWM, the peak resident set, of a process.
func peakRSS(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "unknown"
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			return strings.Join(strings.Fields(string(v)), " ")
		}
	}
	return "unknown"
}
