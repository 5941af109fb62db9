package outbox_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/outbox"
	"github.com/taskhost/taskhost/internal/redistest"
)

// The crash tests re-run this test binary as a child process that uses a
// file outbox, and SIGKILL it. The child's work is chosen by childEnv and
// told by the other variables; it reports progress on stdout.
const (
	childEnv      = "OUTBOX_TEST_CHILD" // "enqueue" or "drain"
	childPathEnv  = "OUTBOX_TEST_PATH"
	childAddrEnv  = "OUTBOX_TEST_ADDR"
	childCountEnv = "OUTBOX_TEST_N"
	childRateEnv  = "OUTBOX_TEST_RATE"
	crashTasks    = 5000
	crashQueue    = "crash"
)

// crashTask is task i of the crash tests; every tenth is scheduled in an
// hour, so options must survive the file.
func crashTask(i int) (*asynq.Task, []asynq.Option) {
	opts := []asynq.Option{asynq.Queue(crashQueue), asynq.MaxRetry(7)}
	if i%10 == 0 {
		opts = append(opts, asynq.ProcessIn(time.Hour))
	}
	return asynq.NewTask("crash:test", payload(i)), opts
}

// runChild is the child's main; it never returns normally, as the parent
// kills it.
func runChild(mode string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "child:", err); return 3 }
	store, err := outbox.OpenFile(os.Getenv(childPathEnv))
	if err != nil {
		return fail(err)
	}
	rdb := newShared(os.Getenv(childAddrEnv))
	var ready atomic.Bool
	rate, _ := strconv.ParseFloat(os.Getenv(childRateEnv), 64)
	c, err := outbox.New(asynq.NewClientFromRedisClient(rdb), ready.Load,
		outbox.Options{Store: store, DrainRate: rate, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		return fail(err)
	}
	switch mode {
	case "enqueue": // Redis is down: hold n tasks from 8 goroutines, then report.
		n, _ := strconv.Atoi(os.Getenv(childCountEnv))
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
					task, opts := crashTask(i)
					r, err := c.Submit(context.Background(), task, opts...)
					if err == nil && !r.Held {
						err = fmt.Errorf("task %d was not held", i)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return fail(err)
		}
		fmt.Printf("accepted %d\n", n)
	case "drain": // Redis is up: drain and report the depth as it falls.
		ready.Store(true)
		c.Kick()
		for {
			n, _ := c.Depth()
			fmt.Printf("depth %d\n", n)
			time.Sleep(2 * time.Millisecond)
		}
	default:
		return fail(fmt.Errorf("unknown mode %q", mode))
	}
	select {} // wait for SIGKILL
}

// child runs the test binary in mode and returns it with a channel of its
// stdout lines.
func child(t *testing.T, mode, path, addr string, env ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childPathEnv+"="+path, childAddrEnv+"="+addr)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = &prefixWriter{t: t}
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // the parent stopped listening; keep the pipe flowing
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, lines
}

// await reads lines until match accepts one, or fails after timeout.
func await(t *testing.T, lines <-chan string, timeout time.Duration, match func(string) bool) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ln, ok := <-lines:
			require.True(t, ok, "child exited early")
			if match(ln) {
				return ln
			}
		case <-deadline:
			t.Fatalf("child did not report in %v", timeout)
		}
	}
}

// kill9 SIGKILLs the child and waits for it.
func kill9(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	err := cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, syscall.SIGKILL, ee.Sys().(syscall.WaitStatus).Signal())
}

// holdInChild makes a file outbox holding crashTasks tasks, accepted by a
// child process that is then SIGKILLed.
func holdInChild(t *testing.T, path, addr string) {
	t.Helper()
	start := time.Now()
	cmd, lines := child(t, "enqueue", path, addr, childCountEnv+"="+strconv.Itoa(crashTasks))
	await(t, lines, 2*time.Minute, func(ln string) bool { return ln == fmt.Sprintf("accepted %d", crashTasks) })
	t.Logf("child accepted %d tasks into the file outbox in %v", crashTasks, time.Since(start).Round(time.Millisecond))
	kill9(t, cmd)
}

func TestAppCrashLosesNothingAccepted(t *testing.T) {
	t.Parallel()
	port, addr := closedPort(t)
	path := filepath.Join(t.TempDir(), "outbox.db")
	holdInChild(t, path, addr)

	srv := startOn(t, port, redistest.Options{})
	store, err := outbox.OpenFile(path)
	require.NoError(t, err)
	f := setup(t, srv.Addr(), outbox.Options{Store: store, DrainRate: math.Inf(1)})
	n, _ := f.c.Depth()
	require.Equal(t, crashTasks, n, "the new client holds every task the killed one accepted")
	f.up()

	got := inRedis(t, f.rdb, crashQueue)
	requireExactlyOnce(t, got, crashTasks)
	requireCrashOptions(t, got)
}

func TestCrashDuringDrainNoDuplicatesNoneMissing(t *testing.T) {
	t.Parallel()
	port, addr := closedPort(t)
	path := filepath.Join(t.TempDir(), "outbox.db")
	holdInChild(t, path, addr)

	srv := startOn(t, port, redistest.Options{})
	cmd, lines := child(t, "drain", path, srv.Addr(), childRateEnv+"=2000")
	ln := await(t, lines, time.Minute, func(ln string) bool {
		n, err := strconv.Atoi(strings.TrimPrefix(ln, "depth "))
		return err == nil && n <= crashTasks*6/10
	})
	kill9(t, cmd)

	before := inRedis(t, sharedClient(t, srv.Addr()), crashQueue)
	t.Logf("killed the draining child at %q; %d tasks were in Redis", ln, len(before))
	require.Greater(t, len(before), 0)
	require.Less(t, len(before), crashTasks, "the child was killed part-way")

	store, err := outbox.OpenFile(path)
	require.NoError(t, err)
	f := setup(t, srv.Addr(), outbox.Options{Store: store, DrainRate: math.Inf(1)})
	held, _ := f.c.Depth()
	require.GreaterOrEqual(t, len(before)+held, crashTasks, "every task is in Redis or still held")
	f.up()

	got := inRedis(t, f.rdb, crashQueue)
	requireExactlyOnce(t, got, crashTasks)
	requireCrashOptions(t, got)
	t.Logf("restart replayed %d tasks the child had delivered but not yet deleted: %s",
		len(before)+held-crashTasks, f.logs.lines("drain finished"))
}

// requireCrashOptions checks that queue, max retry and ProcessIn survived.
func requireCrashOptions(t *testing.T, got map[string][]*asynq.TaskInfo) {
	t.Helper()
	for i := 0; i < crashTasks; i += 7 {
		in := got[string(payload(i))][0]
		require.Equal(t, crashQueue, in.Queue)
		require.Equal(t, 7, in.MaxRetry)
		if i%10 == 0 {
			require.Equal(t, asynq.TaskStateScheduled, in.State, "task %d", i)
			require.WithinDuration(t, time.Now().Add(time.Hour), in.NextProcessAt, 5*time.Minute)
		} else {
			require.Equal(t, asynq.TaskStatePending, in.State, "task %d", i)
		}
	}
}

// prefixWriter copies a child's stderr into the test log.
type prefixWriter struct{ t *testing.T }

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.t.Logf("child: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = (*prefixWriter)(nil)
