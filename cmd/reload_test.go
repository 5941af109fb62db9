package taskhostcmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
	taskhostcmd "github.com/taskhost/taskhost/cmd"
	"github.com/taskhost/taskhost/internal/health"
	"github.com/taskhost/taskhost/internal/redistest"
)

func writeConfig(t *testing.T, path, body string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
}

// healthConfig reads the config section of base/healthz.
func healthConfig(t *testing.T, base string) health.ConfigInfo {
	t.Helper()
	resp, err := probeClient.Get(base + "/healthz")
	require.NoError(t, err)
	defer resp.Body.Close()
	var rep health.Report
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&rep))
	require.NotNil(t, rep.Config, "/healthz has a config section")
	return *rep.Config
}

// configuredWorker starts a Redis, a webhook target and a ready worker on
// the config file that body(redis) writes, with env (nil: workerEnv). It
// returns the file's path and the admin listener's base URL.
func configuredWorker(t *testing.T, env []string, body func(*redistest.Server) string) (*redistest.Server, *hookServer, *worker, string, string) {
	t.Helper()
	s := redistest.Start(t)
	hooks := newHookServer(t, okAnswer)
	path := filepath.Join(t.TempDir(), "config.yaml")
	writeConfig(t, path, body(s))
	if env == nil {
		env = workerEnv(s)
	}
	w := startWorker(t, env, "-config", path)
	base := w.healthURL(t)
	waitReadyz(t, base, http.StatusOK, 10*time.Second)
	return s, hooks, w, path, base
}

// A rate limit lowered by SIGHUP applies within a second, under load.
func TestReloadLowersRateLimitUnderLoad(t *testing.T) {
	t.Parallel()
	s, hooks, w, path, base := configuredWorker(t, nil, func(*redistest.Server) string {
		return "ratelimit:\n  tasks:\n    webhook:deliver: 40-S\n"
	})

	client, _ := queueClients(t, s.Addr())
	for i := range 500 {
		_, err := client.Enqueue(deliverTask(t, fmt.Sprintf("%s/load/%d", hooks.URL, i)), asynq.MaxRetry(1000))
		require.NoError(t, err)
	}
	begin := time.Now()
	require.Eventually(t, func() bool { return hooks.total() >= 60 }, 20*time.Second, 10*time.Millisecond)
	before := float64(hooks.total()) / time.Since(begin).Seconds()
	require.Greater(t, before, 6.0, "the worker is under load before the reload (%.1f tasks/s), well over 2-S", before)

	writeConfig(t, path, "ratelimit:\n  tasks:\n    webhook:deliver: 2-S\n")
	sent := time.Now()
	w.signal(t, syscall.SIGHUP)
	w.waitLog(t, `msg="config reloaded"`, 5*time.Second)
	require.Contains(t, w.stderr.String(), "keys=ratelimit.tasks.webhook:deliver")

	// Measure over the two seconds that start one second after the signal.
	time.Sleep(time.Until(sent.Add(time.Second)))
	n0 := hooks.total()
	time.Sleep(time.Until(sent.Add(3 * time.Second)))
	n := hooks.total() - n0
	t.Logf("before: %.1f tasks/s; after the reload: %d tasks in 2 s", before, n)
	require.LessOrEqual(t, n, 2*2+2, "at 2-S, at most 2 per one-second window (and one window boundary)")
	require.Equal(t, int64(2), healthConfig(t, base).Generation)

	w.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, w.wait(t, 30*time.Second))
}

// A bad config on reload is refused and logged; the worker keeps its config
// and keeps processing.
func TestReloadRefusesBadConfigAndKeepsProcessing(t *testing.T) {
	t.Parallel()
	s, hooks, w, path, base := configuredWorker(t, nil, func(*redistest.Server) string { return "worker:\n  concurrency: 4\n" })
	client, _ := queueClients(t, s.Addr())

	for i, bad := range []struct{ body, want string }{
		{"worker:\n  concurrency: none\n", "worker.concurrency"},
		{"worker: [concurrency\n", "config file"},
		{"worker:\n  concurency: 4\n", "worker.concurency"},
	} {
		writeConfig(t, path, bad.body)
		w.signal(t, syscall.SIGHUP)
		require.Eventually(t, func() bool { return strings.Count(w.stderr.String(), "config reload failed") > i },
			5*time.Second, 10*time.Millisecond)
		line := lastLine(w.stderr.String(), "config reload failed")
		require.Contains(t, line, bad.want)
		require.Contains(t, line, "level=ERROR")

		path := fmt.Sprintf("/after-bad-%d", i)
		_, err := client.Enqueue(deliverTask(t, hooks.URL+path))
		require.NoError(t, err)
		hooks.waitCount(t, path, 1, 10*time.Second)
	}
	c := healthConfig(t, base)
	require.Equal(t, int64(1), c.Generation, "the running config is kept")
	require.NotNil(t, c.LastReload)
	require.Equal(t, "invalid", c.LastReload.Outcome)
	require.Contains(t, c.LastReload.Error, "worker.concurency")

	w.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, w.wait(t, 20*time.Second))
}

// A change of redis.url is refused, naming the key, by `worker reload`; a
// change of log.format applies.
func TestReloadRefusesRedisURLAndAppliesLogFormat(t *testing.T) {
	t.Parallel()
	// REDIS_URL would win over the file: the URL is in the file only.
	s, hooks, w, path, base := configuredWorker(t, []string{"PLUGINS_WEBHOOK_ALLOW_HOSTS=127.0.0.0/8"},
		func(s *redistest.Server) string { return "redis:\n  url: " + s.URL() + "\n" })

	other := "redis://" + redistest.ClosedAddr(t) + "/0"
	writeConfig(t, path, "redis:\n  url: "+other+"\nlog:\n  format: json\n")
	code, stdout, stderr := runWorker(t, nil, "reload", base)
	require.Equal(t, 1, code, "stdout: %s\nstderr: %s", stdout, stderr)
	require.Contains(t, stderr, "refused")
	require.Contains(t, stderr, "redis.url")
	require.NotContains(t, stderr, other, "the refusal names the key, not the value")
	w.waitLog(t, "config reload refused", 5*time.Second)
	require.Contains(t, lastLine(w.stderr.String(), "config reload refused"), "redis.url")

	client, _ := queueClients(t, s.Addr())
	_, err := client.Enqueue(deliverTask(t, hooks.URL+"/still"))
	require.NoError(t, err)
	hooks.waitCount(t, "/still", 1, 10*time.Second)
	require.NotContains(t, w.stderr.String(), `"msg"`, "log.format was not applied either")

	writeConfig(t, path, "redis:\n  url: "+s.URL()+"\nlog:\n  format: json\n")
	code, stdout, stderr = runWorker(t, nil, "reload", base)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", stdout, stderr)
	require.Contains(t, stdout, "applied generation=2 keys=log.format")
	_, err = client.Enqueue(deliverTask(t, hooks.URL+"/json"))
	require.NoError(t, err)
	hooks.waitCount(t, "/json", 1, 10*time.Second)
	w.waitLog(t, `"msg":"config reloaded"`, 10*time.Second)
	require.Equal(t, 2, int(healthConfig(t, base).Generation))

	// The endpoint takes POST from loopback only, and never from a browser.
	req, _ := http.NewRequest(http.MethodPost, base+"/reload", nil)
	req.Header.Set("Origin", "http://example.test")
	resp, err := probeClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, err = probeClient.Get(base + "/reload")
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	w.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, w.wait(t, 20*time.Second))
}

// lastLine returns the last line of s that contains sub.
func lastLine(s, sub string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], sub) {
			return lines[i]
		}
	}
	return ""
}

func reloadCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := taskhostcmd.Run(context.Background(), append([]string{"reload"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// reloadListener answers POST /reload as a worker's admin listener would
// (worker true) or as some other process, and counts the requests.
func reloadListener(t *testing.T, worker bool) (string, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if worker {
			w.Header().Set(taskhost.WorkerHeader, "test")
		}
		if r.Method != http.MethodPost || r.URL.Path != "/reload" {
			http.NotFound(w, r)
			return
		}
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"outcome":"applied","generation":2,"loaded_at":"2026-01-02T03:04:05Z","applied":["log.level"]}`))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), &n
}

// TestReloadResolvesTheWorkerAsHealthDoes: without a URL, `worker reload`
// asks the worker at health.addr of the -config file, -health-addr over the
// file, as `worker health` does; a named file that does not exist is a
// config error, and a listener that is not a worker's is not taken for one.
func TestReloadResolvesTheWorkerAsHealthDoes(t *testing.T) {
	t.Parallel()
	worker, hits := reloadListener(t, true)
	other, otherHits := reloadListener(t, false)

	code, out, errOut := reloadCLI(t, "-config", healthAddrConfig(t, worker))
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "applied generation=2 keys=log.level\n", out)
	require.Equal(t, int32(1), hits.Load())

	code, out, errOut = reloadCLI(t, "-config", healthAddrConfig(t, other), "-health-addr", worker)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "applied")
	require.Equal(t, int32(2), hits.Load(), "the flag over the file")

	// A wildcard listen address is asked on loopback.
	_, port, _ := strings.Cut(worker, ":")
	code, _, errOut = reloadCLI(t, "-config", healthAddrConfig(t, "0.0.0.0:"+port))
	require.Equal(t, 0, code, errOut)
	require.Equal(t, int32(3), hits.Load())

	code, _, errOut = reloadCLI(t, "-config", healthAddrConfig(t, other))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "is not a taskhost worker's admin listener")

	// An explicit URL or host:port is asked as given.
	code, _, errOut = reloadCLI(t, worker)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, int32(4), hits.Load())
	code, _, errOut = reloadCLI(t, "http://"+worker+"/reload")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, int32(5), hits.Load())
	require.Equal(t, int32(1), otherHits.Load())

	code, _, errOut = reloadCLI(t, "-config", filepath.Join(t.TempDir(), "absent.yaml"))
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "absent.yaml")
	code, _, errOut = reloadCLI(t, "-config", healthAddrConfig(t, "nowhere"))
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "health.addr")
	code, _, _ = reloadCLI(t, "a", "b")
	require.Equal(t, 2, code)
	code, _, errOut = reloadCLI(t, "-pid", "1", "-config", healthAddrConfig(t, worker))
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "-pid cannot be given with")
	code, _, _ = reloadCLI(t, "-h")
	require.Equal(t, 0, code)
	require.Equal(t, int32(5), hits.Load())
}

// A running worker is reloaded through `worker reload -config` with
// health.addr in the file; without -config, the default config.yaml being
// absent is no error and HEALTH_ADDR finds the worker, as for worker health.
func TestReloadFindsTheWorkerThroughConfig(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	addr := freeAddr(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	writeConfig(t, path, "redis:\n  url: "+s.URL()+"\nhealth:\n  addr: "+addr+"\n")
	// baseEnv's HEALTH_ADDR would win over the file: the worker gets the
	// same address from the environment, `worker reload` from the file only.
	w := startWorker(t, workerEnv(s, "HEALTH_ADDR="+addr), "-config", path)
	base := w.healthURL(t)
	require.Equal(t, "http://"+addr, base)
	waitReadyz(t, base, http.StatusOK, 10*time.Second)

	cfg := "redis:\n  url: " + s.URL() + "\nhealth:\n  addr: " + addr + "\nlog:\n  format: json\n"
	writeConfig(t, path, cfg)
	code, out, errOut := reloadCLI(t, "-config", path)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "applied generation=2 keys=log.format\n", out)
	w.waitLog(t, `"msg":"config reloaded"`, 5*time.Second)

	// The binary in an empty directory: no config.yaml, HEALTH_ADDR.
	writeConfig(t, path, cfg+"ratelimit:\n  tasks:\n    webhook:deliver: 10-S\n")
	code, out, errOut = runWorker(t, []string{"HEALTH_ADDR=" + addr}, "reload")
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
	require.Contains(t, out, "applied generation=3 keys=ratelimit.tasks.webhook:deliver")
	require.Equal(t, int64(3), healthConfig(t, base).Generation)

	w.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, w.wait(t, 20*time.Second))
}
