package taskhostcmd_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

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
