package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/health"
	"github.com/taskhost/taskhost/internal/testlog"
)

const secret = "hunter2"

// fake is the runtime as the handler sees it; tests turn its knobs.
type fake struct {
	mu             sync.Mutex
	state          string
	fallbackActive bool
	cameBackEmpty  bool
	ready          bool
	readyReason    string
	liveErr        error
	calls          map[string]int
}

func (f *fake) count(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[name]++
}

func (f *fake) called(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[name]
}

func (f *fake) set(fn func(f *fake)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

var (
	stateSince = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	emptyAt    = time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
)

func (f *fake) source() health.Source {
	return health.Source{
		Connection: func(context.Context) (health.Connection, error) {
			f.count("connection")
			f.mu.Lock()
			defer f.mu.Unlock()
			c := health.Connection{State: f.state, Since: stateSince, Mode: "standalone",
				Target: "redis://app:" + secret + "@10.0.0.5:6379/0", LastError: "dial redis://app:" + secret + "@10.0.0.5:6379: refused"}
			if f.cameBackEmpty {
				c.CameBackEmptyAt = &emptyAt
			}
			return c, nil
		},
		Ping: func(context.Context) (time.Duration, error) {
			f.count("ping")
			return 250 * time.Microsecond, nil
		},
		Redis: func(context.Context) (health.RedisInfo, error) {
			f.count("redis")
			return health.RedisInfo{Version: "7.2.4", UsedMemoryBytes: 1 << 20, UsedMemoryPeakBytes: 2 << 20,
				MemFragmentationRatio: 1.5, ConnectedClients: 7, DBSize: 42}, nil
		},
		Queues: func(context.Context) ([]health.Queue, error) {
			f.count("queues")
			return []health.Queue{{Name: "default", Size: 3, Pending: 3, LatencySeconds: 0.5, ProcessedTotal: 10, FailedTotal: 1}}, nil
		},
		Fallbacks: func(context.Context) ([]health.Fallback, error) {
			f.count("fallbacks")
			f.mu.Lock()
			defer f.mu.Unlock()
			return []health.Fallback{
				{Component: "cache", Active: f.fallbackActive, Depth: 12},
				{Component: "ratelimit", Active: false},
				{Component: "outbox", Active: false},
			}, nil
		},
	}
}

type bundle struct {
	fake *fake
	reg  *health.Registry
	opts health.Options
	logs *syncBuffer
}

// setup returns a healthy runtime's handler options; tests change them
// before calling handler.
func setup(t testing.TB) *bundle {
	t.Helper()
	f := &fake{state: "ready", ready: true, calls: map[string]int{}}
	reg := health.NewRegistry(0)
	require.NoError(t, reg.Add(health.Check{Name: "redis.ping", Critical: true, Run: ok}))
	require.NoError(t, reg.Add(health.Check{Name: "webhook.dest", Run: ok}))

	promReg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "taskhost_test_total", Help: "A test counter."})
	c.Add(3)
	promReg.MustRegister(c)

	logs := &syncBuffer{}
	return &bundle{fake: f, reg: reg, logs: logs, opts: health.Options{
		Registry: reg,
		Source:   f.source(),
		Live: func() error {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.liveErr
		},
		Ready: func() (bool, string) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.ready, f.readyReason
		},
		Gatherer:  promReg,
		Timeout:   300 * time.Millisecond,
		Version:   "v0.1.0-test",
		StartedAt: time.Now().Add(-time.Hour),
		Logger:    slog.New(slog.NewTextHandler(logs, nil)),
	}}
}

func (b *bundle) handler() *health.Handler { return health.NewHandler(b.opts) }

// syncBuffer is the one goroutine-safe log buffer of the tests.
type syncBuffer = testlog.Buffer

func serve(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

func report(t *testing.T, w *httptest.ResponseRecorder) health.Report {
	t.Helper()
	require.Equal(t, "application/json", w.Header().Get("Content-Type"))
	dec := json.NewDecoder(w.Body)
	dec.DisallowUnknownFields()
	var rep health.Report
	require.NoError(t, dec.Decode(&rep))
	return rep
}

func TestEndpointsHealthy(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := b.handler()

	w := serve(t, h, http.MethodGet, "/livez")
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, "ok\n", w.Body.String())
	require.Equal(t, "no-store", w.Header().Get("Cache-Control"))

	w = serve(t, h, http.MethodGet, "/readyz")
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, "ok\n", w.Body.String())

	w = serve(t, h, http.MethodGet, "/healthz")
	require.Equal(t, http.StatusOK, w.Code)
	rep := report(t, w)
	require.Equal(t, health.StatusOK, rep.Status)
	require.Empty(t, rep.Reasons)
	require.True(t, rep.Ready)
	require.Equal(t, "v0.1.0-test", rep.Version)
	require.InDelta(t, 3600, rep.UptimeSeconds, 5)
	require.Equal(t, health.DetailFull, rep.Detail)
	require.Equal(t, "ready", rep.Connection.State)
	require.Equal(t, "standalone", rep.Connection.Mode)
	require.Equal(t, "redis://app:***@10.0.0.5:6379/0", rep.Connection.Target)
	require.Greater(t, rep.Connection.SinceSeconds, 0.0)
	require.NotNil(t, rep.Redis)
	require.NotNil(t, rep.Redis.PingMS)
	require.InDelta(t, 0.25, *rep.Redis.PingMS, 0.001)
	require.Equal(t, "7.2.4", rep.Redis.Version)
	require.Equal(t, int64(42), rep.Redis.DBSize)
	require.Equal(t, []health.Queue{{Name: "default", Size: 3, Pending: 3, LatencySeconds: 0.5, ProcessedTotal: 10, FailedTotal: 1}}, rep.Queues)
	require.Len(t, rep.Fallbacks, 3)
	require.Len(t, rep.Checks, 2)
	require.Equal(t, "redis.ping", rep.Checks[0].Name)
	require.Equal(t, health.CheckOK, rep.Checks[0].Status)
	names := []string{}
	for _, s := range rep.Sources {
		require.Equal(t, health.CheckOK, s.Status, s.Name)
		names = append(names, s.Name)
	}
	require.Equal(t, []string{"connection", "fallbacks", "ping", "queues", "ready", "redis"}, names)
	require.Empty(t, rep.Warnings)

	w = serve(t, h, http.MethodGet, "/metrics")
	require.Equal(t, http.StatusOK, w.Code)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(w.Body)
	require.NoError(t, err)
	require.Equal(t, 3.0, fams["taskhost_test_total"].GetMetric()[0].GetCounter().GetValue())
}

func TestHeadAnswersWithoutBody(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(setup(t).handler())
	defer srv.Close()
	for _, path := range []string{"/livez", "/readyz", "/healthz", "/metrics"} {
		req, err := http.NewRequest(http.MethodHead, srv.URL+path, nil)
		require.NoError(t, err)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.Empty(t, body, path)
	}
}

func TestUnknownPathAndWrongMethod(t *testing.T) {
	t.Parallel()
	h := setup(t).handler()
	for _, path := range []string{"/", "/health", "/healthz/", "/livez/x", "/debug/pprof/"} {
		require.Equal(t, http.StatusNotFound, serve(t, h, http.MethodGet, path).Code, path)
		require.Equal(t, http.StatusNotFound, serve(t, h, http.MethodPost, path).Code, path)
	}
	for _, path := range []string{"/livez", "/readyz", "/healthz", "/metrics"} {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
			w := serve(t, h, m, path)
			require.Equal(t, http.StatusMethodNotAllowed, w.Code, m+" "+path)
			require.Equal(t, "GET, HEAD", w.Header().Get("Allow"))
		}
	}
	b := setup(t)
	b.opts.Gatherer = nil
	require.Equal(t, http.StatusNotFound, serve(t, b.handler(), http.MethodGet, "/metrics").Code, "no gatherer, no /metrics")
}

func TestReadyzNotReady(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := b.handler()
	b.fake.set(func(f *fake) {
		f.ready, f.readyReason = false, "redis is reconnecting\nlast error: dial redis://:"+secret+"@h:6379: refused"
	})
	w := serve(t, h, http.MethodGet, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	require.Equal(t, "not ready: redis is reconnecting last error: dial redis://:***@h:6379: refused\n", w.Body.String(),
		"one redacted line")

	b.fake.set(func(f *fake) { f.ready = true })
	require.Equal(t, http.StatusOK, serve(t, h, http.MethodGet, "/readyz").Code)
}

func TestLivezNeverTouchesRedis(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := b.handler()
	require.Equal(t, http.StatusOK, serve(t, h, http.MethodGet, "/livez").Code)
	b.fake.set(func(f *fake) { f.state, f.ready = "down", false })
	require.Equal(t, http.StatusOK, serve(t, h, http.MethodGet, "/livez").Code, "Redis down is not a liveness failure")
	for _, name := range []string{"connection", "ping", "redis", "queues", "fallbacks"} {
		require.Zero(t, b.fake.called(name), name)
	}

	b.fake.set(func(f *fake) { f.liveErr = errors.New("scheduler loop wedged for 2m") })
	w := serve(t, h, http.MethodGet, "/livez")
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	require.Equal(t, "not live: scheduler loop wedged for 2m\n", w.Body.String())
}

func TestStatusRules(t *testing.T) {
	t.Parallel()
	fail := func(context.Context) error { return errors.New("nope") }
	cases := []struct {
		name    string
		change  func(b *bundle)
		status  health.Status
		code    int
		reason  string
		warning string
	}{
		{name: "all well", change: func(*bundle) {}, status: health.StatusOK, code: 200},
		{name: "fallback active", status: health.StatusDegraded, code: 200, reason: "fallback active: cache (depth 12)",
			change: func(b *bundle) { b.fake.fallbackActive = true }},
		{name: "non-critical check fails", status: health.StatusDegraded, code: 200, reason: `check "extra" failed`,
			change: func(b *bundle) { require.NoError(t, b.reg.Add(health.Check{Name: "extra", Run: fail})) }},
		{name: "critical check fails", status: health.StatusDown, code: 503, reason: `critical check "core" failed`,
			change: func(b *bundle) {
				require.NoError(t, b.reg.Add(health.Check{Name: "core", Critical: true, Run: fail}))
			}},
		{name: "reconnecting", status: health.StatusDegraded, code: 200, reason: "redis connection is reconnecting",
			change: func(b *bundle) { b.fake.state = "reconnecting" }},
		{name: "connecting", status: health.StatusDegraded, code: 200, reason: "redis connection is connecting",
			change: func(b *bundle) { b.fake.state = "connecting" }},
		{name: "connection down", status: health.StatusDown, code: 503, reason: "redis connection is down",
			change: func(b *bundle) { b.fake.state = "down" }},
		{name: "not ready", status: health.StatusDegraded, code: 200, reason: "not ready: queue server stopped",
			change: func(b *bundle) { b.fake.ready, b.fake.readyReason = false, "queue server stopped" }},
		{name: "source fails", status: health.StatusDegraded, code: 200, reason: `source "redis" failed`,
			change: func(b *bundle) {
				b.opts.Source.Redis = func(context.Context) (health.RedisInfo, error) { return health.RedisInfo{}, errors.New("x") }
			}},
		{name: "came back empty warns only", status: health.StatusOK, code: 200,
			warning: "redis came back empty at 2026-01-02T03:00:00Z: tasks queued before then were lost on the server side",
			change:  func(b *bundle) { b.fake.cameBackEmpty = true }},
		{name: "down outranks degraded", status: health.StatusDown, code: 503, reason: "fallback active: cache (depth 12)",
			change: func(b *bundle) { b.fake.state, b.fake.fallbackActive = "down", true }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			c.change(b)
			w := serve(t, b.handler(), http.MethodGet, "/healthz")
			require.Equal(t, c.code, w.Code)
			rep := report(t, w)
			require.Equal(t, c.status, rep.Status, "reasons: %v", rep.Reasons)
			if c.reason != "" {
				require.Contains(t, rep.Reasons, c.reason)
			}
			if c.status == health.StatusOK {
				require.Empty(t, rep.Reasons)
			}
			if c.warning != "" {
				require.Equal(t, []string{c.warning}, rep.Warnings)
			}
		})
	}
}

func TestReportJSONFields(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.cameBackEmpty = true
	require.NoError(t, b.reg.Add(health.Check{Name: "failing", Run: func(context.Context) error { return errors.New("x") }}))
	w := serve(t, b.handler(), http.MethodGet, "/healthz")
	var m map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &m))
	require.ElementsMatch(t, []string{"status", "reasons", "warnings", "ready", "version", "started_at", "uptime_seconds",
		"checked_at", "duration_ms", "detail", "connection", "redis", "queues", "fallbacks", "checks", "sources"}, keys(m))
	require.ElementsMatch(t, []string{"state", "since", "since_seconds", "mode", "target", "last_error", "came_back_empty_at"},
		keys(m["connection"].(map[string]any)))
	require.ElementsMatch(t, []string{"ping_ms", "version", "uptime_seconds", "used_memory_bytes", "used_memory_peak_bytes",
		"maxmemory_bytes", "mem_fragmentation_ratio", "connected_clients", "dbsize"}, keys(m["redis"].(map[string]any)))
	require.ElementsMatch(t, []string{"name", "size", "pending", "active", "scheduled", "retry", "archived", "completed",
		"latency_seconds", "processed_today", "failed_today", "processed_total", "failed_total", "paused"},
		keys(m["queues"].([]any)[0].(map[string]any)))
	require.ElementsMatch(t, []string{"component", "active", "depth"}, keys(m["fallbacks"].([]any)[0].(map[string]any)))
	require.ElementsMatch(t, []string{"name", "status", "error", "duration_ms", "critical"}, keys(m["checks"].([]any)[0].(map[string]any)))
	require.ElementsMatch(t, []string{"name", "status", "duration_ms"}, keys(m["sources"].([]any)[0].(map[string]any)))
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestMinimalDetail(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.opts.Detail = health.DetailMinimal
	b.fake.state = "reconnecting"
	require.NoError(t, b.reg.Add(health.Check{Name: "failing", Run: func(context.Context) error {
		return errors.New("dial 10.0.0.5:6379: refused")
	}}))
	w := serve(t, b.handler(), http.MethodGet, "/healthz")
	body := w.Body.String()
	rep := report(t, w)
	require.Equal(t, health.DetailMinimal, rep.Detail)
	require.Equal(t, health.StatusDegraded, rep.Status)
	require.Nil(t, rep.Redis)
	require.Nil(t, rep.Queues)
	require.Equal(t, "reconnecting", rep.Connection.State)
	require.Empty(t, rep.Connection.Target)
	require.Empty(t, rep.Connection.LastError)
	for _, c := range rep.Checks {
		require.Empty(t, c.Error)
	}
	require.NotContains(t, body, "10.0.0.5")
	require.NotContains(t, body, `"redis"`)
	require.NotContains(t, body, `"queues"`)
	for _, name := range []string{"ping", "redis", "queues"} {
		require.Zero(t, b.fake.called(name), "minimal detail does not ask Redis for %s", name)
	}
}

func TestNoSecretInAnyOutput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.set(func(f *fake) {
		f.state, f.ready, f.readyReason = "down", false, "redis://:"+secret+"@h:6379 unreachable"
		f.liveErr = errors.New("loop wedged talking to redis://u:" + secret + "@h")
	})
	require.NoError(t, b.reg.Add(health.Check{Name: "leaky", Critical: true, Run: func(context.Context) error {
		return errors.New("GET https://bot:" + secret + "@hooks.example.com/x?token=" + secret)
	}}))
	b.opts.Source.Queues = func(context.Context) ([]health.Queue, error) {
		return nil, errors.New("redis://:" + secret + "@h")
	}
	h := b.handler()
	for _, path := range []string{"/livez", "/readyz", "/healthz", "/metrics"} {
		w := serve(t, h, http.MethodGet, path)
		require.NotContains(t, w.Body.String(), secret, path)
		require.NotEmpty(t, w.Body.String(), path)
	}
	require.NotContains(t, b.logs.String(), secret)
}

func TestStatusChangeLoggedOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := b.handler()
	ctx := context.Background()
	h.Report(ctx)
	h.Report(ctx)
	b.fake.set(func(f *fake) { f.fallbackActive = true })
	h.Report(ctx)
	h.Report(ctx)
	logs := b.logs.String()
	require.Equal(t, 2, strings.Count(logs, "health status changed"), logs)
	require.Contains(t, logs, "component=healthcheck")
	require.Contains(t, logs, "from=ok to=degraded")
}

func TestParseDetail(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]health.Detail{"": health.DetailFull, "full": health.DetailFull, "minimal": health.DetailMinimal} {
		got, err := health.ParseDetail(in)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	_, err := health.ParseDetail("verbose")
	require.Error(t, err)
}

func TestConcurrentProbesShareOneCall(t *testing.T) {
	t.Parallel()
	b := setup(t)
	release := make(chan struct{})
	var calls atomic.Int32
	b.opts.Source.Redis = func(context.Context) (health.RedisInfo, error) {
		calls.Add(1)
		<-release
		return health.RedisInfo{}, nil
	}
	h := b.handler()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			rep := h.Report(context.Background())
			require.Nil(t, rep.Redis.RedisInfo)
		})
	}
	wg.Wait()
	close(release)
	require.Equal(t, int32(1), calls.Load(), "20 probes during one slow INFO cost Redis one INFO")
	require.Eventually(t, func() bool {
		return h.Report(context.Background()).Redis.RedisInfo != nil
	}, 2*time.Second, 10*time.Millisecond, "a new call starts once the hung one has returned")
}
