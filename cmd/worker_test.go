package taskhostcmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	taskhostcmd "github.com/taskhost/taskhost/cmd"
	"github.com/taskhost/taskhost/internal/redistest"
)

// hookServer is an httptest server standing for webhook destinations. It
// counts requests per path; answer decides the response and may block.
type hookServer struct {
	*httptest.Server
	mu   sync.Mutex
	hits map[string]int
}

func newHookServer(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) *hookServer {
	t.Helper()
	h := &hookServer{hits: map[string]int{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.hits[r.URL.Path]++
		h.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) count(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hits[path]
}

func (h *hookServer) total() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.hits {
		n += c
	}
	return n
}

func (h *hookServer) waitCount(t *testing.T, path string, n int, d time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool { return h.count(path) >= n }, d, 10*time.Millisecond,
		"%s was not requested %d times", path, n)
}

// okAnswer answers 200 at once.
func okAnswer(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }

// holdUntil answers 200 when release is closed; it gives up when the
// worker drops the request.
func holdUntil(release <-chan struct{}) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
			w.WriteHeader(http.StatusOK)
		case <-r.Context().Done():
		}
	}
}

func deliverTask(t *testing.T, url string) *asynq.Task {
	t.Helper()
	b, err := json.Marshal(map[string]string{"url": url})
	require.NoError(t, err)
	return asynq.NewTask("webhook:deliver", b)
}

func queueClients(t *testing.T, addr string) (*asynq.Client, *asynq.Inspector) {
	t.Helper()
	c := asynq.NewClient(asynq.RedisClientOpt{Addr: addr})
	ins := asynq.NewInspector(asynq.RedisClientOpt{Addr: addr})
	t.Cleanup(func() { _ = c.Close(); _ = ins.Close() })
	return c, ins
}

// workerEnv is the environment of a worker on the Redis s with the webhook
// plugin allowed to reach loopback.
func workerEnv(s *redistest.Server, more ...string) []string {
	return append([]string{"REDIS_URL=" + s.URL(), "PLUGINS_WEBHOOK_ALLOW_HOSTS=127.0.0.0/8"}, more...)
}

func TestWorkerExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	unknownPlugin := filepath.Join(dir, "unknown-plugin.yaml")
	require.NoError(t, os.WriteFile(unknownPlugin, []byte("plugins:\n  nosuch: {}\n  webhook: {}\n"), 0o600))

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		want []string // in stdout or stderr
	}{
		{"version", nil, []string{"-version"}, 0, []string{"taskhost worker "}},
		{"check-config valid", []string{"REDIS_URL=redis://127.0.0.1:1/0"}, []string{"-check-config"}, 0, []string{"config ok"}},
		{"check-config invalid", []string{"WORKER_CONCURRENCY=0"}, []string{"-check-config"}, 2, []string{"worker.concurrency"}},
		{"check-config plugin section", []string{"PLUGINS_WEBHOOK_BOGUS=1"}, []string{"-check-config"}, 2, []string{"plugins.webhook.bogus: unknown key"}},
		{"check-config plugin value", []string{"PLUGINS_WEBHOOK_ALLOW_HOSTS=300.0.0.0/99"}, []string{"-check-config"}, 2, []string{"plugins.webhook.allow_hosts"}},
		{"bad key value", []string{"REDIS_PORT=abc"}, nil, 2, []string{"redis.port", "REDIS_PORT", `"abc"`}},
		{"unknown plugin", nil, []string{"-config", unknownPlugin}, 2, []string{"plugins.nosuch", "compiled-in plugins are: canary, webhook"}},
		{"unknown plugin from env", []string{"PLUGINS_NOSUCH_URL=x"}, []string{"-check-config"}, 2, []string{"plugins.nosuch"}},
		{"missing config file", nil, []string{"-config", filepath.Join(dir, "absent.yaml")}, 2, []string{"absent.yaml"}},
		{"unknown flag", nil, []string{"-bogus"}, 2, []string{"flag provided but not defined: -bogus"}},
		{"stray argument", nil, []string{"run"}, 2, []string{`unexpected argument "run"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runWorker(t, tc.env, tc.args...)
			require.Equal(t, tc.code, code, "stdout: %s\nstderr: %s", stdout, stderr)
			for _, w := range tc.want {
				require.Contains(t, stdout+stderr, w)
			}
		})
	}
}

// Under SIGTERM with 20 slow tasks in flight, the worker exits 0: the 10
// tasks that finish within worker.shutdown_timeout complete, the 10 that do
// not are requeued. None is lost.
func TestSIGTERMWithTasksInFlightLosesNone(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	release := make(chan struct{})
	var once sync.Once
	hooks := newHookServer(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/finishes/") {
			holdUntil(release)(w, r)
			return
		}
		holdUntil(nil)(w, r) // outlasts the shutdown timeout
	})
	t.Cleanup(func() { once.Do(func() { close(release) }) }) // before hooks.Close

	client, ins := queueClients(t, s.Addr())
	const n = 20
	finishes := map[string]bool{}
	for i := 0; i < n; i++ {
		path := "/outlasts/"
		if i%2 == 0 {
			path = "/finishes/"
		}
		info, err := client.Enqueue(deliverTask(t, hooks.URL+path+string(rune('a'+i))), asynq.MaxRetry(3), asynq.Retention(time.Hour))
		require.NoError(t, err)
		finishes[info.ID] = i%2 == 0
	}

	w := startWorker(t, workerEnv(s, "WORKER_CONCURRENCY=20", "WORKER_SHUTDOWN_TIMEOUT=3s"))
	require.Eventually(t, func() bool { return hooks.total() == n }, 20*time.Second, 10*time.Millisecond,
		"all tasks in flight")

	w.signal(t, syscall.SIGTERM)
	w.waitLog(t, "stopping gracefully", 5*time.Second)
	once.Do(func() { close(release) }) // half of them finish during the shutdown
	require.Equal(t, 0, w.wait(t, 20*time.Second), "a graceful stop exits 0")
	require.NotContains(t, w.stderr.String(), "level=ERROR", "a graceful stop logs no error")

	q, err := ins.GetQueueInfo("default")
	require.NoError(t, err)
	require.Zero(t, q.Active, "nothing is left active")
	require.Zero(t, q.Archived)
	require.Equal(t, n, q.Completed+q.Pending+q.Retry, "no task is lost")
	require.Equal(t, n/2, q.Completed, "in-flight tasks finish within the shutdown timeout")
	require.Equal(t, n/2, q.Pending, "the rest are requeued")
	for id, fin := range finishes {
		info, err := ins.GetTaskInfo("default", id)
		require.NoError(t, err)
		want := asynq.TaskStatePending
		if fin {
			want = asynq.TaskStateCompleted
		}
		require.Equal(t, want, info.State, "task %s", id)
	}
}

func TestSecondSignalForcesExit(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	hooks := newHookServer(t, holdUntil(nil))
	client, _ := queueClients(t, s.Addr())
	_, err := client.Enqueue(deliverTask(t, hooks.URL+"/slow"))
	require.NoError(t, err)

	w := startWorker(t, workerEnv(s, "WORKER_SHUTDOWN_TIMEOUT=60s"))
	hooks.waitCount(t, "/slow", 1, 20*time.Second)
	w.signal(t, syscall.SIGTERM)
	w.waitLog(t, `msg="stopping: waiting for in-flight tasks" component=runtime tasks=1`, 5*time.Second)
	begin := time.Now()
	w.signal(t, syscall.SIGTERM)
	require.Equal(t, 1, w.wait(t, 10*time.Second), "a forced exit is a failure")
	require.Less(t, time.Since(begin), 5*time.Second, "the second signal does not wait for the task")
	require.Contains(t, w.stderr.String(), "second signal received, forcing exit")
}

func TestSIGTSTPStopsFetching(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	hooks := newHookServer(t, okAnswer)
	client, ins := queueClients(t, s.Addr())

	w := startWorker(t, workerEnv(s))
	base := w.healthURL(t)
	waitReadyz(t, base, http.StatusOK, 10*time.Second)
	_, err := client.Enqueue(deliverTask(t, hooks.URL+"/before"))
	require.NoError(t, err)
	hooks.waitCount(t, "/before", 1, 10*time.Second)

	w.signal(t, syscall.SIGTSTP)
	waitReadyz(t, base, http.StatusServiceUnavailable, 5*time.Second)
	w.waitLog(t, "stopped fetching new tasks", 5*time.Second)
	late, err := client.Enqueue(deliverTask(t, hooks.URL+"/after"))
	require.NoError(t, err)
	// A fetching worker takes a pending task within milliseconds; give it
	// well over that.
	time.Sleep(1500 * time.Millisecond)
	require.Zero(t, hooks.count("/after"), "no task is fetched after SIGTSTP")
	info, err := ins.GetTaskInfo("default", late.ID)
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStatePending, info.State)
	waitReadyz(t, base, http.StatusServiceUnavailable, time.Second)

	w.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, w.wait(t, 20*time.Second))
	info, err = ins.GetTaskInfo("default", late.ID)
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStatePending, info.State, "the task waits for the next worker")
}

// devAddr is the embedded Redis's default address. No other test uses it.
const devAddr = "127.0.0.1:6380"

// waitPortFree waits up to d for nothing to listen on addr.
func waitPortFree(t *testing.T, addr string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			_ = l.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is in use by another process (a `worker -dev` left running?): %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestDevModeProcessesExternalEnqueue(t *testing.T) {
	t.Parallel()
	hooks := newHookServer(t, okAnswer)
	waitPortFree(t, devAddr, 10*time.Second)
	w := startWorker(t, nil, "-dev")
	waitReadyz(t, w.healthURL(t), http.StatusOK, 10*time.Second)
	require.Contains(t, w.stderr.String(), "EMBEDDED REDIS", "the loud warning")

	client := asynq.NewClient(asynq.RedisClientOpt{Addr: devAddr})
	defer client.Close()
	_, err := client.Enqueue(deliverTask(t, hooks.URL+"/dev"))
	require.NoError(t, err)
	hooks.waitCount(t, "/dev", 1, 10*time.Second)

	// `worker enqueue -dev` reaches the same embedded Redis.
	var out, errOut bytes.Buffer
	code := taskhostcmd.Run(context.Background(), []string{"enqueue", "-dev",
		"-type", "webhook:deliver", "-payload", `{"url":"` + hooks.URL + `/cli"}`}, &out, &errOut)
	require.Equal(t, 0, code, errOut.String())
	require.Contains(t, out.String(), "queue=default state=pending")
	hooks.waitCount(t, "/cli", 1, 10*time.Second)

	w.signal(t, syscall.SIGINT) // like Ctrl-C in a terminal
	require.Equal(t, 0, w.wait(t, 20*time.Second))
}
