package chaostest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
)

// workerShutdown is the chaos workers' worker.shutdown_timeout.
const workerShutdown = 5 * time.Second

// harness holds the processes of one run and the faults injected so far.
type harness struct {
	t        *testing.T
	queue    *redistest.Server // killed and restarted; AOF, appendfsync always
	rec      *redistest.Server // never killed
	qrdb     *redis.Client     // the test's own client of the queue Redis
	insp     *asynq.Inspector
	recorder *recorder
	workers  []*proc
	health   []string // health listener of each worker
	producer *proc

	mu     sync.Mutex
	faults []fault
}

// setup starts the two Redis servers; workers and producer come later.
func setup(t *testing.T) *harness {
	t.Helper()
	h := &harness{
		t:     t,
		queue: redistest.Start(t, redistest.Options{AOF: true, AppendFsync: "always"}),
		rec:   redistest.Start(t),
	}
	h.qrdb = redis.NewClient(&redis.Options{Addr: h.queue.Addr(), MaxRetries: -1})
	h.insp = asynq.NewInspectorFromRedisClient(h.qrdb)
	h.recorder = newRecorder(h.rec.Addr())
	t.Cleanup(func() {
		_ = h.insp.Close()
		_ = h.qrdb.Close()
		_ = h.recorder.rdb.Close()
	})
	return h
}

// workerConfig writes a worker config file and returns its path.
// extraPlugins is YAML appended under plugins.
func (h *harness) workerConfig(concurrency int, work time.Duration, extraPlugins string) string {
	level := os.Getenv("CHAOS_WORKER_LOG_LEVEL") // e.g. info, to see every task and transition
	if level == "" {
		level = "warn"
	}
	body := fmt.Sprintf(`log:
  level: %s
redis:
  url: %s
worker:
  concurrency: %d
  shutdown_timeout: %s
plugins:
  chaos:
    record_addr: %s
    work: %s
%s`, level, h.queue.URL(), concurrency, workerShutdown, h.rec.Addr(), work, extraPlugins)
	path := filepath.Join(h.t.TempDir(), "worker.yaml")
	require.NoError(h.t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

// startWorkers starts n chaos workers on configPath and waits until each
// answers /readyz with 200.
func (h *harness) startWorkers(n int, configPath string) {
	h.t.Helper()
	for i := range n {
		port, err := redistest.FreePort()
		require.NoError(h.t, err)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		w := newProc(h.t, fmt.Sprintf("w%d", i), workerBin, "-config", configPath, "-health-addr", addr)
		require.NoError(h.t, w.start())
		h.workers = append(h.workers, w)
		h.health = append(h.health, addr)
	}
	for i := range h.workers {
		h.waitReady(i, 30*time.Second)
	}
}

// waitReady waits for worker i's /readyz to answer 200.
func (h *harness) waitReady(i int, d time.Duration) {
	h.t.Helper()
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if resp, err := c.Get("http://" + h.health[i] + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		require.True(h.t, h.workers[i].running(), "worker %d exited while starting:\n%s", i, h.workers[i].logTail(2000))
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("worker %d not ready within %s:\n%s", i, d, h.workers[i].logTail(2000))
}

func (h *harness) addFault(f fault) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.faults = append(h.faults, f)
	h.t.Logf("%s %s: %s (pid %d), back after %s", time.Now().Format("15:04:05.000"), f.kind, f.target, f.pid,
		f.end.Sub(f.at).Round(time.Millisecond))
}

func (h *harness) faultList() []fault {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]fault(nil), h.faults...)
}

func (h *harness) count(kind string) int {
	n := 0
	for _, f := range h.faultList() {
		if f.kind == kind {
			n++
		}
	}
	return n
}

// outages returns the Redis kills, in order.
func (h *harness) outages() []fault {
	var out []fault
	for _, f := range h.faultList() {
		if f.kind == faultRedisKill {
			out = append(out, f)
		}
	}
	return out
}

// killWorker SIGKILLs worker i and starts it again after down.
func (h *harness) killWorker(i int, down time.Duration) {
	h.t.Helper()
	w := h.workers[i]
	at := time.Now()
	pid, err := w.kill()
	require.NoError(h.t, err)
	time.Sleep(down)
	require.NoError(h.t, w.start())
	h.addFault(fault{kind: faultWorkerKill, target: w.name, pid: pid, at: at, end: time.Now()})
}

// termWorker sends SIGTERM to worker i, requires a graceful exit with code
// 0, and starts it again.
func (h *harness) termWorker(i int) {
	h.t.Helper()
	w := h.workers[i]
	at := time.Now()
	pid, err := w.signal(syscall.SIGTERM)
	require.NoError(h.t, err)
	code, err := w.wait(workerShutdown + 15*time.Second)
	require.NoError(h.t, err)
	require.Equal(h.t, 0, code, "a worker stopped by SIGTERM must exit 0:\n%s", w.logTail(2000))
	require.NoError(h.t, w.start())
	h.addFault(fault{kind: faultWorkerTerm, target: w.name, pid: pid, at: at, end: time.Now()})
}

// redisOutage SIGKILLs the queue Redis, runs during (if any) while it is
// down, and restarts it on the same port and AOF when d has passed.
func (h *harness) redisOutage(d time.Duration, during func()) {
	h.t.Helper()
	at, pid := time.Now(), h.queue.PID()
	h.queue.Kill()
	if during != nil {
		during()
	}
	time.Sleep(time.Until(at.Add(d)))
	h.queue.MustRestart(h.t)
	h.addFault(fault{kind: faultRedisKill, target: "queue redis " + h.queue.Addr(), pid: pid, at: at, end: time.Now()})
}

// killProducer SIGKILLs the producer and starts it again on the same
// outbox file and progress file after down.
func (h *harness) killProducer(down time.Duration) {
	h.t.Helper()
	at := time.Now()
	pid, err := h.producer.kill()
	require.NoError(h.t, err)
	time.Sleep(down)
	require.NoError(h.t, h.producer.start())
	h.addFault(fault{kind: faultProducerKill, target: h.producer.name, pid: pid, at: at, end: time.Now()})
}

// queueInfo is the default queue's counts.
func (h *harness) queueInfo() (*asynq.QueueInfo, error) {
	return h.insp.GetQueueInfo("default")
}

// unfinished is the number of tasks a queue still holds to run.
func unfinished(q *asynq.QueueInfo) int {
	return q.Pending + q.Active + q.Scheduled + q.Retry + q.Aggregating
}
