package scaletest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
)

// Names shared with ./noopworker.
const (
	noopPlugin   = "s8-noop"
	noopTaskType = "s8:noop"
	noopRunsKey  = "s8:runs"
	noopProcKey  = "s8:byproc"
	manyQueue    = "s8many"
)

// TestManyWorkers runs 4 worker processes (the stock worker plus a no-op
// recording plugin, ./noopworker) on one queue and one Redis, drains N
// tasks, and checks that each task ran exactly once, on some worker, and
// logs how the work was shared. It then drains the same N with 1 worker
// and logs both throughputs with the CPU each process used. N is 4,000
// here; `-tags scale` runs TestManyWorkersScale with 20,000.
func TestManyWorkers(t *testing.T) {
	t.Parallel()
	bin := buildNoopWorker(t)
	const n = 4000
	four := runManyWorkers(t, bin, 4, n)
	t.Logf("4 workers: %s", four)
	one := runManyWorkers(t, bin, 1, n)
	t.Logf("1 worker:  %s", one)
	t.Logf("4 workers / 1 worker throughput: %.2f (worker binaries built with -race=%v)", four.rate/one.rate, raceEnabled)
}

// buildNoopWorker builds ./noopworker into the test's temp dir. When the
// test binary has the race detector, so does the worker: it then reuses the
// packages `go test -race` compiled.
func buildNoopWorker(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(goruntime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "noopworker")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/taskhost/taskhost/internal/scaletest/noopworker")
	start := time.Now()
	out, err := exec.Command(goBin, args...).CombinedOutput()
	require.NoError(t, err, "go %s: %s", strings.Join(args, " "), out)
	t.Logf("built the worker in %v (race=%v)", time.Since(start).Round(10*time.Millisecond), raceEnabled)
	return bin
}

// manyResult is one drain: N tasks by some worker processes.
type manyResult struct {
	workers, n  int
	drained     int           // tasks counted between the first and the last observation
	elapsed     time.Duration // from the first task seen done to the last
	rate        float64       // drained / elapsed, tasks per second
	workerCPU   time.Duration // user+system CPU of all worker processes during the drain
	redisCPU    time.Duration // of the queue's redis-server
	recorderCPU time.Duration // of the recording redis-server
	perWorker   []int
}

func (r manyResult) String() string {
	sec := r.elapsed.Seconds()
	perTask := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(max(r.drained, 1)) }
	return fmt.Sprintf("N=%d drained %d in %v = %.0f tasks/s; CPU: workers %v (%.2f cores, %.0f µs/task), queue redis %v (%.2f cores, %.0f µs/task), recording redis %v; per worker %v",
		r.n, r.drained, r.elapsed.Round(time.Millisecond), r.rate,
		r.workerCPU.Round(time.Millisecond), r.workerCPU.Seconds()/sec, perTask(r.workerCPU),
		r.redisCPU.Round(time.Millisecond), r.redisCPU.Seconds()/sec, perTask(r.redisCPU),
		r.recorderCPU.Round(time.Millisecond), r.perWorker)
}

// workerProc is one worker process.
type workerProc struct {
	cmd    *exec.Cmd
	health string
	out    *syncBuffer
	done   chan struct{}
	err    error
}

// runManyWorkers starts a queue Redis and a recording Redis, enqueues n
// tasks into a paused queue, starts the workers and waits until all are
// ready, opens the queue, and waits until every task has been recorded.
func runManyWorkers(t *testing.T, bin string, workers, n int) manyResult {
	t.Helper()
	qs, rs := redistest.Start(t), redistest.Start(t)
	qc := redis.NewClient(&redis.Options{Addr: qs.Addr(), PoolSize: 16})
	t.Cleanup(func() { _ = qc.Close() })
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { _ = rc.Close() })
	ctx := context.Background()
	insp := asynq.NewInspectorFromRedisClient(qc)
	t.Cleanup(func() { _ = insp.Close() })
	require.NoError(t, insp.PauseQueue(manyQueue))
	enqueueMany(t, qc, n)

	dir := t.TempDir()
	conf := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`log: {level: warn}
worker:
  queues: {%s: 1}
  shutdown_timeout: 10s
plugins:
  %s: {record_addr: "%s"}
`, manyQueue, noopPlugin, rs.Addr())), 0o600))

	procs := make([]*workerProc, workers)
	for i := range procs {
		procs[i] = startWorker(t, bin, conf, qs.URL())
	}
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, p := range procs {
		require.Eventually(t, func() bool {
			resp, err := hc.Get("http://" + p.health + "/readyz")
			if err != nil {
				return false
			}
			_ = resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}, 30*time.Second, 20*time.Millisecond, "worker ready; output: %s", p.out.String())
	}

	pids := make([]int, workers)
	for i, p := range procs {
		pids[i] = p.cmd.Process.Pid
	}
	w0, q0, r0 := cpuOf(t, pids...), cpuOf(t, qs.PID()), cpuOf(t, rs.PID())
	require.NoError(t, insp.UnpauseQueue(manyQueue))
	var t0, t1 time.Time
	var n0 int64
	require.Eventually(t, func() bool {
		done, err := rc.HLen(ctx, noopRunsKey).Result()
		if err != nil || done == 0 {
			return false
		}
		if t0.IsZero() {
			t0, n0 = time.Now(), done
		}
		if done < int64(n) {
			return false
		}
		t1 = time.Now()
		return true
	}, 2*time.Minute, 5*time.Millisecond, "every task is processed")
	res := manyResult{workers: workers, n: n, drained: n - int(n0), elapsed: t1.Sub(t0),
		workerCPU: cpuOf(t, pids...) - w0, redisCPU: cpuOf(t, qs.PID()) - q0, recorderCPU: cpuOf(t, rs.PID()) - r0}
	res.rate = float64(res.drained) / res.elapsed.Seconds()

	// Exactly once: every ID recorded, each with one run.
	require.Eventually(t, func() bool {
		qi, err := insp.GetQueueInfo(manyQueue)
		return err == nil && qi.Pending == 0 && qi.Active == 0 && qi.Retry == 0 && qi.Archived == 0
	}, 10*time.Second, 20*time.Millisecond, "the queue is empty, nothing failed")
	runs, err := rc.HGetAll(ctx, noopRunsKey).Result()
	require.NoError(t, err)
	require.Len(t, runs, n)
	for i := range n {
		id := manyID(i)
		require.Equal(t, "1", runs[id], "task %s runs exactly once", id)
	}
	byProc, err := rc.HGetAll(ctx, noopProcKey).Result()
	require.NoError(t, err)
	total, sharing := 0, 0
	for _, pid := range pids {
		c, _ := strconv.Atoi(byProc[strconv.Itoa(pid)])
		res.perWorker = append(res.perWorker, c)
		total += c
		if c > 0 {
			sharing++
		}
	}
	// How the work is shared is reported, not asserted: an unpause pushes
	// nothing, so the first worker whose bounded wait ends (≤ 1 s) can drain
	// all N before the others look again.
	t.Logf("tasks per worker: %v (%d of %d workers took a share)", res.perWorker, sharing, workers)
	require.Equal(t, n, total, "every run was made by one of the workers")

	for _, p := range procs {
		stopWorker(t, p)
	}
	return res
}

func manyID(i int) string { return fmt.Sprintf("s8m-%06d", i) }

// enqueueMany enqueues n s8:noop tasks with IDs manyID(0..n-1), from 8
// goroutines.
func enqueueMany(t *testing.T, c redis.UniversalClient, n int) {
	t.Helper()
	cl := asynq.NewClientFromRedisClient(c)
	defer cl.Close()
	const par = 8
	errs := make(chan error, par)
	var wg sync.WaitGroup
	for g := range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += par {
				if _, err := cl.Enqueue(asynq.NewTask(noopTaskType, nil), asynq.Queue(manyQueue), asynq.TaskID(manyID(i))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// startWorker starts the worker binary with conf, REDIS_URL and a free
// HEALTH_ADDR, and only those in its environment (plus PATH). It is killed
// in t.Cleanup if it still runs.
func startWorker(t *testing.T, bin, conf, redisURL string) *workerProc {
	t.Helper()
	port, err := redistest.FreePort()
	require.NoError(t, err)
	p := &workerProc{health: fmt.Sprintf("127.0.0.1:%d", port), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "-config", conf)
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "REDIS_URL=" + redisURL, "HEALTH_ADDR=" + p.health}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// stopWorker sends SIGTERM and expects a clean exit (code 0) within 20 s.
func stopWorker(t *testing.T, p *workerProc) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
		require.NoError(t, p.err, "worker exit; output: %s", tailString(p.out.String(), 2000))
	case <-time.After(20 * time.Second):
		t.Fatalf("worker did not stop within 20s; output: %s", tailString(p.out.String(), 2000))
	}
}

// cpuOf returns the user+system CPU time the processes used so far, from
// /proc/<pid>/stat (clock ticks of 10 ms).
func cpuOf(t *testing.T, pids ...int) time.Duration {
	t.Helper()
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		require.NoError(t, err)
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		utime, err1 := strconv.ParseInt(f[11], 10, 64)
		stime, err2 := strconv.ParseInt(f[12], 10, 64)
		require.NoError(t, err1)
		require.NoError(t, err2)
		total += time.Duration(utime+stime) * 10 * time.Millisecond
	}
	return total
}
