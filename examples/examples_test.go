package examples_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/internal/testlog"
)

// The programs, built once per test binary in a module of their own.
var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	if code == 0 {
		if err := goleak.Find(
			goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"),
			goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// programs maps each program to the directory it is copied from.
var programs = map[string]string{
	"embed":       "embed",
	"httpservice": "httpservice",
	"worker":      "worker",
	"outside":     "testdata/outside",
}

// bin returns the path of a built program. The first call builds them all,
// in a temporary module that requires taskhost through a replace of this
// checkout: they see what another module sees, and an import of an
// internal/ package would not build.
func bin(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() { buildDir, buildErr = buildPrograms() })
	require.NoError(t, buildErr)
	return filepath.Join(buildDir, "bin", name)
}

func buildPrograms() (string, error) {
	checkout, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "taskhost-examples-")
	if err != nil {
		return "", err
	}
	for name, from := range programs {
		if err := os.CopyFS(filepath.Join(dir, name), os.DirFS(from)); err != nil {
			return dir, err
		}
	}
	gomod := "module example.com/outside\n\ngo 1.26.0\n\n" +
		"require github.com/taskhost/taskhost v0.0.0-00010101000000-000000000000\n\n" +
		"replace github.com/taskhost/taskhost => " + checkout + "\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		return dir, err
	}
	// The checkout's sums cover every module the programs need, so nothing
	// is looked up but the (warm) module cache.
	sums, err := os.ReadFile(filepath.Join(checkout, "go.sum"))
	if err != nil {
		return dir, err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sums, 0o644); err != nil {
		return dir, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, "bin")+string(filepath.Separator), "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod -buildvcs=false", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return dir, fmt.Errorf("go build in a module of its own: %v\n%s", err, out)
	}
	return dir, nil
}

// proc is a running program whose output (stdout and stderr) is kept.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// syncBuffer is the one goroutine-safe log buffer of the tests.
type syncBuffer = testlog.Buffer

// start runs a built program with env added to the test's environment; it
// is killed at the end of the test if still running.
func start(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin(t, name), args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s printed:\n%s", name, p.out.String())
		}
	})
	return p
}

// waitFor waits until the output matches re and returns the submatches.
func (p *proc) waitFor(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	require.Eventually(t, func() bool {
		m = rx.FindStringSubmatch(p.out.String())
		return m != nil
	}, 30*time.Second, 10*time.Millisecond, "waiting for %q", re)
	return m
}

// stop sends sig and returns the exit code.
func (p *proc) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("did not exit within 30 s of the signal")
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(t, p.err)
	return 0
}

// run runs a built program to its end and returns its output and exit code.
func run(t *testing.T, name string, env []string, args ...string) (string, int) {
	t.Helper()
	p := start(t, name, env, args...)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Fatalf("%s did not finish within a minute", name)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return p.out.String(), ee.ExitCode()
	}
	require.NoError(t, p.err)
	return p.out.String(), 0
}

// TestOutsideModule is the outside-module test: a module of its own
// builds a runtime from a Config that names the Redis URL, processes a task,
// reads the diagnostics, and uses the cache, the limiter and the client.
func TestOutsideModule(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	out, code := run(t, "outside", []string{"REDIS_URL=" + redis.URL()})
	require.Zero(t, code, out)
	for _, line := range []string{
		"config: valid from the Redis URL alone",
		"state: ready",
		"client: enqueued, held: false",
		"task: processed, sum 5",
		"diagnostics: state ready, version set true, dbsize > 0 true, used memory > 0 true",
		"cache: 1 from redis",
		"limiter: 2 of 3 allowed at 2-M on redis",
	} {
		require.Contains(t, out, line+"\n")
	}
}

// TestEmbed runs the README's program: its enqueue, made before Start, is
// held in the outbox and delivered once Redis is ready; an interrupt stops
// it cleanly.
func TestEmbed(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	p := start(t, "embed", []string{"REDIS_URL=" + redis.URL(), "HEALTH_ADDR=127.0.0.1:0"})
	id := p.waitFor(t, `enqueued (\S+) <nil>`)[1]
	inspector := asynq.NewInspectorFromRedisClient(redistest.Client(t, redis.Addr()))
	var info *asynq.TaskInfo
	require.Eventually(t, func() bool {
		var err error
		info, err = inspector.GetTaskInfo("default", id)
		return err == nil
	}, 20*time.Second, 20*time.Millisecond, "the task held before Redis was ready reaches Redis")
	require.Equal(t, "email:welcome", info.Type)
	require.Equal(t, 0, p.stop(t, os.Interrupt))
}

// TestHTTPService drives the HTTP service: a greet task is enqueued through
// the outbox client and handled in the same process, whose result the
// service reads from the shared cache; the rate limit refuses a third greet
// a minute; while Redis is down the task is held, and it runs once Redis is
// back.
func TestHTTPService(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	p := start(t, "httpservice", []string{"REDIS_URL=" + redis.URL(), "ADDR=127.0.0.1:0",
		"HEALTH_ADDR=127.0.0.1:0", "GREET_RATE=2-M"})
	base := "http://" + p.waitFor(t, `listening on (\S+)`)[1]

	greet := func(name string) (int, map[string]any, http.Header) {
		res, err := http.Post(base+"/greet?name="+name, "", nil)
		require.NoError(t, err)
		defer res.Body.Close()
		var body map[string]any
		if res.StatusCode == http.StatusAccepted {
			require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
		}
		return res.StatusCode, body, res.Header
	}
	get := func(path string) (int, string) {
		res, err := http.Get(base + path)
		require.NoError(t, err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return res.StatusCode, string(b)
	}
	waitGreeting := func(name string) {
		t.Helper()
		require.Eventually(t, func() bool {
			code, body := get("/greeting?name=" + name)
			return code == http.StatusOK && body == "hello, "+name+"\n"
		}, 20*time.Second, 20*time.Millisecond, "the greet task for %s was not handled", name)
	}
	stats := func() map[string]any {
		_, body := get("/stats")
		var s map[string]any
		require.NoError(t, json.Unmarshal([]byte(body), &s), body)
		return s
	}
	state := func() string { v, _ := stats()["state"].(string); return v }

	// The cache and the limiter follow the connection monitor on their own
	// subscriptions, moments after it says ready.
	require.Eventually(t, func() bool {
		s := stats()
		return s["state"] == "ready" && s["cache"] == "redis" && s["ratelimit"] == "redis"
	}, 10*time.Second, 20*time.Millisecond)
	code, body, _ := greet("ann")
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, false, body["held"])
	waitGreeting("ann")

	code, _, _ = greet("bob")
	require.Equal(t, http.StatusAccepted, code)
	code, _, hdr := greet("cid")
	require.Equal(t, http.StatusTooManyRequests, code, "GREET_RATE=2-M refuses the third")
	require.NotEmpty(t, hdr.Get("Retry-After"))

	require.NotEmpty(t, stats()["redis_version"])

	// Redis goes away: the service keeps answering, and the outbox holds.
	redis.Kill()
	require.Eventually(t, func() bool { return state() != "ready" }, 10*time.Second, 20*time.Millisecond)
	code, body, _ = greet("dan")
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, true, body["held"], "held in the outbox while Redis is down")
	redis.MustRestart(t)
	waitGreeting("dan")

	require.Equal(t, 0, p.stop(t, syscall.SIGTERM))
	require.Contains(t, p.out.String(), "stopped\n")
}

// TestCustomWorker runs the custom worker binary with a config file that
// enables its own plugin: the config checks, the worker starts, the
// binary's enqueue subcommand sends a task, and the plugin handles it.
func TestCustomWorker(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(strings.Join([]string{
		"redis:",
		"  url: " + redis.URL(),
		"health:",
		"  addr: 127.0.0.1:0",
		"plugins:",
		"  hello:",
		"    greeting: hi",
		"",
	}, "\n")), 0o600))

	out, code := run(t, "worker", nil, "-config", cfg, "-check-config")
	require.Zero(t, code, out)
	require.Equal(t, "config ok\n", out)

	w := start(t, "worker", nil, "-config", cfg)
	w.waitFor(t, `msg="worker started".* plugins=1`)
	out, code = run(t, "worker", nil, "enqueue", "-config", cfg, "-type", "hello:say", "-payload", `{"name":"ann"}`)
	require.Zero(t, code, out)
	require.Regexp(t, `^id=\S+ queue=default state=pending\n$`, out)
	w.waitFor(t, `msg="hi, ann"`)
	require.Equal(t, 0, w.stop(t, syscall.SIGTERM))
}
