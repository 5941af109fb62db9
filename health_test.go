package taskhost_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/healthcheck"
	"github.com/taskhost/taskhost/internal/health"
	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/internal/testlog"
	"github.com/taskhost/taskhost/plugins"
)

// t5Service is a plugin with a background service and nothing else, so its
// start and stop show in the logs.
type t5Service struct{}

func (t5Service) PluginInfo() plugins.Info {
	return plugins.Info{ID: "t5-svc", New: func() plugins.Plugin { return t5Service{} }}
}
func (t5Service) Start(context.Context) error { return nil }
func (t5Service) Stop(context.Context) error  { return nil }

func init() { plugins.Register(t5Service{}) }

// h5Client probes the health listener; without keep-alives it leaves no
// idle connection for goleak.
var h5Client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// h5Get answers GET url with its status and body.
func h5Get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := h5Client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// h5Report fetches /healthz and decodes it strictly into a Report.
func h5Report(t *testing.T, base string) (int, health.Report, string) {
	t.Helper()
	code, body := h5Get(t, base+"/healthz")
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	var rep health.Report
	require.NoError(t, dec.Decode(&rep), "the /healthz body is a Report:\n%s", body)
	return code, rep, body
}

// h5WaitStatus polls path until it answers want.
func h5WaitStatus(t *testing.T, url string, want int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		code, body := h5Get(t, url)
		if code == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s answered %d (%s), want %d within %s", url, code, strings.TrimSpace(body), want, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// h5WaitOK waits until /healthz says ok: Redis is ready and the cache and
// limiter, which follow the monitor on its subscriber goroutine, are back on
// Redis.
func h5WaitOK(t *testing.T, base string) {
	t.Helper()
	var rep health.Report
	require.Eventually(t, func() bool {
		_, rep, _ = h5Report(t, base)
		return rep.Status == health.StatusOK
	}, 5*time.Second, 20*time.Millisecond, "status %s: %v", rep.Status, rep.Reasons)
}

func h5Fallback(t *testing.T, rep health.Report, component string) health.Fallback {
	t.Helper()
	for _, f := range rep.Fallbacks {
		if f.Component == component {
			return f
		}
	}
	t.Fatalf("no fallback %q in %+v", component, rep.Fallbacks)
	return health.Fallback{}
}

func h5Check(t *testing.T, rep health.Report, name string) healthcheck.CheckResult {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", name, rep.Checks)
	return healthcheck.CheckResult{}
}

func h5Source(rep health.Report, name string) (health.SourceResult, bool) {
	for _, s := range rep.Sources {
		if s.Name == name {
			return s, true
		}
	}
	return health.SourceResult{}, false
}

// TestHealthReportThroughKillRestart follows a runtime's report and JSON
// logs through a Redis SIGKILL and restart.
func TestHealthReportThroughKillRestart(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	cfg := testConfig(t, s.Addr())
	cfg.Log.Format, cfg.Log.Level = "json", "debug"
	cfg.Plugins = map[string]map[string]any{"t5-svc": {}, "webhook": {}} // webhook: a worker with handlers
	logs := &testlog.Buffer{}
	rt, err := taskhost.New(cfg, taskhost.Options{Logger: taskhost.NewLogger(cfg.Log, logs), Version: "test"})
	require.NoError(t, err)
	var transitions atomic.Int64
	rt.Subscribe(func(_, _ taskhost.State) { transitions.Add(1) })
	require.NoError(t, rt.Start(context.Background()))
	t.Cleanup(func() { _ = rt.Stop(context.Background()) })
	base := "http://" + rt.HealthAddr()
	h5WaitOK(t, base)

	// A task in a queue the worker does not serve stays pending.
	_, err = rt.Client().Enqueue(asynq.NewTask("t5:parked", nil), asynq.Queue("t5-parked"))
	require.NoError(t, err)

	code, rep, _ := h5Report(t, base)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, health.StatusOK, rep.Status, "reasons: %v", rep.Reasons)
	require.True(t, rep.Ready)
	require.Empty(t, rep.ReadyReason)
	require.Equal(t, "test", rep.Version)
	require.Positive(t, rep.UptimeSeconds)
	require.NotNil(t, rep.Connection)
	require.Equal(t, "ready", rep.Connection.State)
	require.Equal(t, taskhost.ModeStandalone, rep.Connection.Mode)
	require.Contains(t, rep.Connection.Target, s.Addr())
	require.Empty(t, rep.Connection.LastError)
	require.Empty(t, rep.Connection.Master, "master is for sentinel mode")
	require.NotNil(t, rep.Redis)
	require.NotNil(t, rep.Redis.PingMS)
	require.NotNil(t, rep.Redis.RedisInfo)
	require.NotEmpty(t, rep.Redis.Version)
	require.Positive(t, rep.Redis.DBSize)
	require.Nil(t, rep.Redis.Cluster)
	var parked *health.Queue
	for i := range rep.Queues {
		if rep.Queues[i].Name == "t5-parked" {
			parked = &rep.Queues[i]
		}
	}
	require.NotNil(t, parked, "queues: %+v", rep.Queues)
	require.Equal(t, 1, parked.Pending)
	require.Equal(t, 1, parked.Size)
	for _, c := range []string{"cache", "ratelimit", "outbox"} {
		require.False(t, h5Fallback(t, rep, c).Active, c)
	}
	require.NotNil(t, h5Fallback(t, rep, "cache").Since, "the cache switched to Redis at start")
	require.Equal(t, healthcheck.CheckOK, h5Check(t, rep, "runtime.outbox").Status)

	s.Kill()
	h5WaitStatus(t, base+"/readyz", http.StatusServiceUnavailable, 10*time.Second)
	_, err = rt.Client().Enqueue(asynq.NewTask("t5:held", nil), asynq.Queue("t5-parked")) // no handler: not served
	require.NoError(t, err)
	code, rep, _ = h5Report(t, base)
	require.NotEqual(t, health.StatusOK, rep.Status)
	require.Contains(t, []string{"reconnecting", "down"}, rep.Connection.State)
	require.NotEmpty(t, rep.Connection.LastError, "the latest connection error is shown while not ready")
	require.Nil(t, rep.Redis, "no Redis detail while Redis is not ready")
	for _, c := range []string{"cache", "ratelimit"} {
		f := h5Fallback(t, rep, c)
		require.True(t, f.Active, c)
		require.NotNil(t, f.Since, c)
		require.WithinDuration(t, time.Now(), *f.Since, 15*time.Second, c)
	}
	ob := h5Fallback(t, rep, "outbox")
	require.True(t, ob.Active)
	require.EqualValues(t, 1, ob.Depth)
	require.NotNil(t, ob.Since)
	if rep.Status == health.StatusDown {
		require.Equal(t, http.StatusServiceUnavailable, code)
	}

	s.MustRestart(t)
	h5WaitStatus(t, base+"/readyz", http.StatusOK, 15*time.Second)
	h5WaitOK(t, base)
	_, rep, _ = h5Report(t, base)
	require.Empty(t, rep.Connection.LastError)
	require.False(t, h5Fallback(t, rep, "outbox").Active, "the outbox drained")
	require.NotNil(t, rep.Connection.CameBackEmptyAt, "Redis came back without its data")
	require.Len(t, rep.Warnings, 1)

	require.NoError(t, rt.Stop(context.Background()))
	h5CheckLogs(t, logs.String(), rt, transitions.Load())
}

// h5CheckLogs asserts that every line is a JSON object with a component, no
// line has an emoji, and transitions, switches, plugin start and stop and
// shutdown steps are one line each.
func h5CheckLogs(t *testing.T, text string, rt *taskhost.Runtime, stateChanges int64) {
	t.Helper()
	var transitions, cacheSwitches, limitSwitches, started, stopped, steps int
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "not JSON: %s", line)
		comp, _ := rec["component"].(string)
		require.NotEmpty(t, comp, "no component: %s", line)
		for _, r := range line {
			require.False(t, r >= 0x1F000 || (r >= 0x2600 && r <= 0x27BF) || r == 0xFE0F, "emoji in %s", line)
		}
		msg, _ := rec["msg"].(string)
		_, hasTo := rec["to"]
		_, hasBackend := rec["backend"]
		switch {
		case comp == "redis" && hasTo:
			transitions++
		case comp == "cache" && hasBackend:
			cacheSwitches++
		case comp == "ratelimit" && hasBackend:
			limitSwitches++
		case comp == "plugin" && rec["plugin"] == "t5-svc" && msg == "plugin started":
			started++
		case comp == "plugin" && rec["plugin"] == "t5-svc" && msg == "plugin stopped":
			stopped++
		case comp == "runtime" && strings.HasPrefix(msg, "shutdown: "):
			steps++
		}
	}
	require.NoError(t, sc.Err())
	// connecting→ready, ready→reconnecting, (→down,) →ready, →closed.
	require.GreaterOrEqual(t, transitions, 4)
	require.EqualValues(t, stateChanges, transitions, "one line per state transition")
	require.EqualValues(t, rt.Cache().Switches(), cacheSwitches, "one line per cache switch")
	require.EqualValues(t, rt.Limits().Switches(), limitSwitches, "one line per limiter switch")
	require.GreaterOrEqual(t, cacheSwitches, 3)
	require.Equal(t, 1, started, "plugin started")
	require.Equal(t, 1, stopped, "plugin stopped")
	require.GreaterOrEqual(t, steps, 4, "shutdown steps")
}

// TestHealthMinimalDetail checks that health.detail=minimal leaves out the
// Redis and queue detail and the connection target.
func TestHealthMinimalDetail(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	cfg := testConfig(t, s.Addr())
	cfg.Health.Detail = "minimal"
	cfg.Plugins = map[string]map[string]any{"webhook": {}} // a worker with handlers
	rt := startRuntime(t, cfg)
	h5WaitOK(t, "http://"+rt.HealthAddr())
	_, err := rt.Client().Enqueue(asynq.NewTask("t5:parked", nil), asynq.Queue("t5-minimal"))
	require.NoError(t, err)

	code, rep, body := h5Report(t, "http://"+rt.HealthAddr())
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, health.DetailMinimal, rep.Detail)
	require.Equal(t, health.StatusOK, rep.Status, "reasons: %v", rep.Reasons)
	require.Nil(t, rep.Redis)
	require.Nil(t, rep.Queues)
	require.NotNil(t, rep.Connection)
	require.Equal(t, "ready", rep.Connection.State)
	require.Empty(t, rep.Connection.Target)
	for _, name := range []string{"ping", "redis", "queues"} {
		_, ok := h5Source(rep, name)
		require.False(t, ok, "source %s at minimal", name)
	}
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(body), &raw))
	require.NotContains(t, raw, "redis")
	require.NotContains(t, raw, "queues")
	require.NotContains(t, body, s.Addr())
	require.NotContains(t, body, "t5-minimal")
	require.Len(t, rep.Fallbacks, 3, "fallbacks stay at minimal")
}

// TestHealthSentinelMaster checks that the report names the master a
// sentinel client is connected to.
func TestHealthSentinelMaster(t *testing.T) {
	t.Parallel()
	sen := redistest.StartSentinel(t)
	cfg := testConfig(t, sen.Master().Addr())
	cfg.Redis.Mode = taskhost.ModeSentinel
	cfg.Redis.MasterName = sen.MasterName()
	cfg.Redis.SentinelAddrs = sen.SentinelAddrs()
	rt := startRuntime(t, cfg)
	waitState(t, rt, 5*time.Second, "ready")

	_, rep, _ := h5Report(t, "http://"+rt.HealthAddr())
	require.Equal(t, taskhost.ModeSentinel, rep.Connection.Mode)
	require.Equal(t, sen.Master().Addr(), rep.Connection.Master)
	require.NotNil(t, rep.Redis)
	require.NotNil(t, rep.Redis.RedisInfo)

	// After a failover the report names the new master.
	old := rep.Connection.Master
	sen.KillMaster()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	promoted, err := sen.WaitFailover(ctx)
	require.NoError(t, err)
	require.NotEqual(t, old, promoted)
	require.Eventually(t, func() bool {
		_, rep, _ = h5Report(t, "http://"+rt.HealthAddr())
		return rep.Connection.State == "ready" && rep.Connection.Master == promoted
	}, 10*time.Second, 50*time.Millisecond, "connection: %+v", rep.Connection)
}

// TestHealthOutboxCheckNearlyFull checks that the runtime's own check fails
// once the outbox holds 90% of outbox.max_tasks, while Redis is away.
func TestHealthOutboxCheckNearlyFull(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, redistest.ClosedAddr(t))
	cfg.Outbox.MaxTasks = 10
	rt := startRuntime(t, cfg)
	base := "http://" + rt.HealthAddr()

	for i := range 9 {
		_, rep, _ := h5Report(t, base)
		require.Equal(t, healthcheck.CheckOK, h5Check(t, rep, "runtime.outbox").Status, "at %d tasks", i)
		_, err := rt.Client().Enqueue(asynq.NewTask("t5:held", nil))
		require.NoError(t, err)
	}
	code, rep, _ := h5Report(t, base)
	c := h5Check(t, rep, "runtime.outbox")
	require.Equal(t, healthcheck.CheckFail, c.Status)
	require.False(t, c.Critical)
	require.Equal(t, "outbox holds 9 tasks of outbox.max_tasks 10", c.Error)
	require.Contains(t, rep.Reasons, `check "runtime.outbox" failed`)
	ob := h5Fallback(t, rep, "outbox")
	require.True(t, ob.Active)
	require.EqualValues(t, 9, ob.Depth)
	require.Contains(t, []string{"connecting", "down"}, rep.Connection.State)
	require.NotEmpty(t, rep.Connection.LastError)
	if rep.Status == health.StatusDown {
		require.Equal(t, http.StatusServiceUnavailable, code)
	}
}

// TestNewLoggerFormatAndLevel checks log.format and log.level.
func TestNewLoggerFormatAndLevel(t *testing.T) {
	t.Parallel()
	var js, text bytes.Buffer
	jl := taskhost.NewLogger(taskhost.LogConfig{Format: "json", Level: "warn"}, &js)
	jl.Info("dropped", "component", "t5")
	jl.Warn("kept", "component", "t5")
	var rec map[string]any
	require.NoError(t, json.Unmarshal(js.Bytes(), &rec), js.String())
	require.Equal(t, "kept", rec["msg"])
	require.Equal(t, "WARN", rec["level"])
	require.Equal(t, "t5", rec["component"])

	tl := taskhost.NewLogger(taskhost.LogConfig{Format: "text", Level: "debug"}, &text)
	tl.Debug("shown", "component", "t5")
	require.Contains(t, text.String(), `level=DEBUG msg=shown component=t5`)
}
