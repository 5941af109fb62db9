package taskhostcmd_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/taskhost/taskhost/internal/testlog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	if code == 0 {
		// In-process runs (worker enqueue) must not leave goroutines behind.
		if err := goleak.Find(
			goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"),
		); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
	// buildFlags are extra `go build` flags for the worker binary.
	buildFlags []string
)

// workerBinary builds ./cmd/worker once per test run and returns its path.
func workerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "taskhost-worker-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "worker")
		goBin, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("go not on PATH: %w", err)
			return
		}
		out, err := exec.Command(goBin, append(append([]string{"build"}, buildFlags...), "-o", binPath, "./worker")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/worker: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// syncBuffer is the one goroutine-safe log buffer of the tests.
type syncBuffer = testlog.Buffer

// worker is a worker binary running as a child process.
type worker struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	err    error // of Wait, once done is closed
}

// baseEnv is the environment a child worker gets besides the test's own
// settings: nothing from the test's environment leaks into its config.
func baseEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir(), "HEALTH_ADDR=127.0.0.1:0", "LOG_LEVEL=info"}
}

// startWorker starts the worker binary with env (over baseEnv) and args, in
// an empty directory so that no config.yaml is read by default. The process
// is killed in Cleanup if it is still running.
func startWorker(t *testing.T, env []string, args ...string) *worker {
	t.Helper()
	return startBinary(t, workerBinary(t), env, args...)
}

// startBinary starts the program at path like startWorker.
func startBinary(t *testing.T, path string, env []string, args ...string) *worker {
	t.Helper()
	w := &worker{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	w.cmd = exec.Command(path, args...)
	w.cmd.Env = append(baseEnv(), env...)
	w.cmd.Dir = t.TempDir()
	w.cmd.Stdout, w.cmd.Stderr = w.stdout, w.stderr
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.err = w.cmd.Wait(); close(w.done) }()
	t.Cleanup(func() {
		select {
		case <-w.done:
		default:
			_ = w.cmd.Process.Kill()
			<-w.done
		}
		if t.Failed() {
			t.Logf("worker stderr:\n%s", w.stderr.String())
		}
	})
	return w
}

// runWorker runs the worker binary to its exit and returns its exit code,
// stdout and stderr.
func runWorker(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	w := startWorker(t, env, args...)
	return w.wait(t, 30*time.Second), w.stdout.String(), w.stderr.String()
}

// wait waits up to d for the process to exit and returns its exit code.
func (w *worker) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(d):
		t.Fatalf("worker did not exit within %s; stderr:\n%s", d, w.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(w.err, &ee) {
		return ee.ExitCode()
	}
	if w.err != nil {
		t.Fatalf("worker: %v", w.err)
	}
	return 0
}

func (w *worker) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := w.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s: %v", sig, err)
	}
}

// waitLog waits up to d for the worker's stderr to contain s.
func (w *worker) waitLog(t *testing.T, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(w.stderr.String(), s) {
		select {
		case <-w.done:
			t.Fatalf("worker exited before logging %q; stderr:\n%s", s, w.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker did not log %q within %s; stderr:\n%s", s, d, w.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// probeClient keeps no idle connections, which goleak would report.
var probeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

var healthRE = regexp.MustCompile(`msg="worker started".* health=(\S+)`)

// healthURL waits for the worker to start and returns the base URL of its
// health listener.
func (w *worker) healthURL(t *testing.T) string {
	t.Helper()
	w.waitLog(t, `msg="worker started"`, 20*time.Second)
	m := healthRE.FindStringSubmatch(w.stderr.String())
	if m == nil {
		t.Fatalf("no health address in the start line:\n%s", w.stderr.String())
	}
	return "http://" + m[1]
}

// waitReadyz waits up to d for base/readyz to answer want.
func waitReadyz(t *testing.T, base string, want int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := "no answer"
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		resp, err := probeClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == want {
				cancel()
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		cancel()
		if time.Now().After(deadline) {
			t.Fatalf("/readyz did not answer %d within %s: %s", want, d, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
