package metrics_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskhost/taskhost/internal/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakes holds the in-memory state the Register funcs read.
type fakes struct {
	pool                     redis.PoolStats
	cacheActive              atomic.Bool
	cacheSwitches            atomic.Uint64
	hits, misses             atomic.Uint64
	checks, rejections       atomic.Uint64
	outboxDepth              atomic.Int64
	outboxOldestMilliseconds atomic.Int64
}

// setup returns Metrics with every func-based metric registered over fakes.
func setup(t *testing.T) (*metrics.Metrics, *fakes) {
	t.Helper()
	m := metrics.New()
	f := &fakes{pool: redis.PoolStats{Hits: 10, Misses: 2, Timeouts: 1, TotalConns: 5, IdleConns: 3}}
	require.NoError(t, m.RegisterPoolStats("shared", func() *redis.PoolStats { return &f.pool }))
	require.NoError(t, m.RegisterPoolStats("queue", func() *redis.PoolStats { return nil }))
	require.NoError(t, m.RegisterFallback("cache", f.cacheActive.Load, f.cacheSwitches.Load))
	require.NoError(t, m.RegisterFallback("outbox", func() bool { return false }, func() uint64 { return 0 }))
	require.NoError(t, m.RegisterCacheStats(func() (uint64, uint64) { return f.hits.Load(), f.misses.Load() }))
	require.NoError(t, m.RegisterLimiterStats(func() (uint64, uint64) { return f.checks.Load(), f.rejections.Load() }))
	require.NoError(t, m.RegisterOutbox(func() int { return int(f.outboxDepth.Load()) },
		func() time.Duration { return time.Duration(f.outboxOldestMilliseconds.Load()) * time.Millisecond }))
	return m, f
}

// scrape serves the registry as /metrics does and parses the text format back.
func scrape(t *testing.T, g prometheus.Gatherer) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	w := httptest.NewRecorder()
	promhttp.HandlerFor(g, promhttp.HandlerOpts{}).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Header().Get("Content-Type"), "text/plain")
	text := w.Body.Bytes()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(text))
	require.NoError(t, err, "the exposition parses as text format")
	return string(text), fams
}

// value is the value of the series of name whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	mf, ok := fams[name]
	require.True(t, ok, "no metric %s", name)
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("no series %s%v", name, want)
	return 0
}

func TestExpositionParsesAndFollowsConventions(t *testing.T) {
	t.Parallel()
	m, _ := setup(t)
	for _, o := range metrics.Outcomes {
		m.ObserveTask("email:send", "default", o, 20*time.Millisecond)
	}
	m.SetState("ready")

	problems, err := testutil.GatherAndLint(m.Gatherer())
	require.NoError(t, err)
	require.Empty(t, problems, "promlint")

	_, fams := scrape(t, m.Gatherer())
	var ours []string
	for name, mf := range fams {
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue
		}
		require.True(t, strings.HasPrefix(name, "taskhost_"), "%s lacks the taskhost_ prefix", name)
		if mf.GetType() == dto.MetricType_COUNTER {
			require.True(t, strings.HasSuffix(name, "_total"), "counter %s must end in _total", name)
		} else {
			require.False(t, strings.HasSuffix(name, "_total"), "%s is not a counter but ends in _total", name)
		}
		ours = append(ours, name)
	}
	require.Contains(t, ours, "taskhost_tasks_processed_total")
	require.Contains(t, fams, "go_goroutines")
	require.Contains(t, fams, "process_cpu_seconds_total")
}

func TestObserveTaskMovesCounters(t *testing.T) {
	t.Parallel()
	m, _ := setup(t)
	m.ObserveTask("email:send", "default", metrics.OutcomeSuccess, 30*time.Millisecond)
	m.ObserveTask("email:send", "default", metrics.OutcomeSuccess, 3*time.Second)
	m.ObserveTask("email:send", "critical", metrics.OutcomeRateLimited, time.Millisecond)
	m.ObserveTask("report:build", "default", metrics.OutcomePanic, time.Millisecond)

	_, fams := scrape(t, m.Gatherer())
	processed := func(typ, queue, outcome string) float64 {
		return value(t, fams, "taskhost_tasks_processed_total", map[string]string{"type": typ, "queue": queue, "outcome": outcome})
	}
	require.Equal(t, 2.0, processed("email:send", "default", "success"))
	require.Equal(t, 1.0, processed("email:send", "critical", "rate_limited"))
	require.Equal(t, 1.0, processed("report:build", "default", "panic"))

	h := fams["taskhost_task_duration_seconds"]
	for _, s := range h.GetMetric() {
		if s.GetLabel()[0].GetValue() != "email:send" {
			continue
		}
		require.Equal(t, uint64(3), s.GetHistogram().GetSampleCount())
		require.InDelta(t, 3.031, s.GetHistogram().GetSampleSum(), 1e-9)
		for _, b := range s.GetHistogram().GetBucket() {
			if b.GetUpperBound() == 0.05 {
				require.Equal(t, uint64(2), b.GetCumulativeCount(), "30ms and 1ms fall at or under 50ms")
			}
		}
	}

	m.TaskStarted()
	m.TaskStarted()
	m.TaskFinished()
	_, fams = scrape(t, m.Gatherer())
	require.Equal(t, 1.0, value(t, fams, "taskhost_tasks_in_flight", nil))
}

func TestSetState(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	state := func(fams map[string]*dto.MetricFamily) map[string]float64 {
		out := map[string]float64{}
		for _, s := range metrics.States {
			out[s] = value(t, fams, "taskhost_redis_state", map[string]string{"state": s})
		}
		return out
	}
	_, fams := scrape(t, m.Gatherer())
	require.Equal(t, map[string]float64{"connecting": 0, "ready": 0, "reconnecting": 0, "down": 0, "closed": 0}, state(fams),
		"every state's series exists before the first SetState")

	m.SetState("connecting")
	m.SetState("ready")
	m.SetState("ready")
	m.SetState("reconnecting")
	m.SetState("ready")
	_, fams = scrape(t, m.Gatherer())
	require.Equal(t, map[string]float64{"connecting": 0, "ready": 1, "reconnecting": 0, "down": 0, "closed": 0}, state(fams))
	to := func(s string) float64 {
		return value(t, fams, "taskhost_redis_state_transitions_total", map[string]string{"to": s})
	}
	require.Equal(t, 0.0, to("connecting"), "the first state is not a transition")
	require.Equal(t, 2.0, to("ready"), "setting the same state again is not a transition")
	require.Equal(t, 1.0, to("reconnecting"))
}

func TestFuncMetricsFollowTheirFuncs(t *testing.T) {
	t.Parallel()
	m, f := setup(t)
	f.cacheActive.Store(true)
	f.cacheSwitches.Store(3)
	f.hits.Store(40)
	f.misses.Store(2)
	f.checks.Store(100)
	f.rejections.Store(7)
	f.outboxDepth.Store(12)
	f.outboxOldestMilliseconds.Store(2500)

	_, fams := scrape(t, m.Gatherer())
	shared := map[string]string{"pool": "shared"}
	require.Equal(t, 10.0, value(t, fams, "taskhost_redis_pool_hits_total", shared))
	require.Equal(t, 2.0, value(t, fams, "taskhost_redis_pool_misses_total", shared))
	require.Equal(t, 1.0, value(t, fams, "taskhost_redis_pool_timeouts_total", shared))
	require.Equal(t, 5.0, value(t, fams, "taskhost_redis_pool_connections", shared))
	require.Equal(t, 3.0, value(t, fams, "taskhost_redis_pool_idle_connections", shared))
	require.Equal(t, 0.0, value(t, fams, "taskhost_redis_pool_connections", map[string]string{"pool": "queue"}), "nil stats read as 0")
	require.Equal(t, 1.0, value(t, fams, "taskhost_fallback_active", map[string]string{"component": "cache"}))
	require.Equal(t, 3.0, value(t, fams, "taskhost_fallback_switches_total", map[string]string{"component": "cache"}))
	require.Equal(t, 0.0, value(t, fams, "taskhost_fallback_active", map[string]string{"component": "outbox"}))
	require.Equal(t, 40.0, value(t, fams, "taskhost_cache_hits_total", nil))
	require.Equal(t, 2.0, value(t, fams, "taskhost_cache_misses_total", nil))
	require.Equal(t, 100.0, value(t, fams, "taskhost_ratelimit_checks_total", nil))
	require.Equal(t, 7.0, value(t, fams, "taskhost_ratelimit_rejections_total", nil))
	require.Equal(t, 12.0, value(t, fams, "taskhost_outbox_depth", nil))
	require.Equal(t, 2.5, value(t, fams, "taskhost_outbox_oldest_pending_age_seconds", nil))

	f.cacheActive.Store(false)
	f.hits.Add(1)
	_, fams = scrape(t, m.Gatherer())
	require.Equal(t, 0.0, value(t, fams, "taskhost_fallback_active", map[string]string{"component": "cache"}))
	require.Equal(t, 41.0, value(t, fams, "taskhost_cache_hits_total", nil))
}

func TestRegisterTwiceFails(t *testing.T) {
	t.Parallel()
	m, _ := setup(t)
	require.Error(t, m.RegisterPoolStats("shared", func() *redis.PoolStats { return nil }))
	require.Error(t, m.RegisterFallback("cache", func() bool { return false }, func() uint64 { return 0 }))
	require.Error(t, m.RegisterCacheStats(func() (uint64, uint64) { return 0, 0 }))
	require.Error(t, m.RegisterOutbox(func() int { return 0 }, func() time.Duration { return 0 }))
	require.NoError(t, m.RegisterFallback("ratelimit", func() bool { return false }, func() uint64 { return 0 }))
	_, err := testutil.GatherAndLint(m.Gatherer())
	require.NoError(t, err, "a failed registration leaves the registry consistent")
}

// TestDocsListEveryMetric keeps the table in docs/health.md in step.
func TestDocsListEveryMetric(t *testing.T) {
	t.Parallel()
	m, _ := setup(t)
	m.ObserveTask("t", "q", metrics.OutcomeSuccess, time.Millisecond)
	require.NoError(t, m.RegisterQueues(stubInspector{}, 0))
	require.NoError(t, m.RegisterSchedules(func() []metrics.ScheduleStat {
		return []metrics.ScheduleStat{{Name: "schedules.s", Next: 2, LastRun: 1, Ticks: map[string]uint64{"enqueued": 1}}}
	}))
	require.NoError(t, m.RegisterQuarantine(func() map[string]int64 { return map[string]int64{"q": 2} },
		func() map[[2]string]uint64 { return map[[2]string]uint64{{"q", "missing"}: 3} }))
	_, fams := scrape(t, m.Gatherer())
	require.Equal(t, 2.0, value(t, fams, "taskhost_quarantined_tasks", map[string]string{"queue": "q"}))
	require.Equal(t, 3.0, value(t, fams, "taskhost_tasks_set_aside_total", map[string]string{"queue": "q", "reason": "missing"}))
	doc, err := os.ReadFile("../../docs/health.md")
	require.NoError(t, err)
	listed := map[string]bool{}
	for _, match := range regexp.MustCompile("(?m)^\\| `(taskhost_[a-z_]+)`").FindAllStringSubmatch(string(doc), -1) {
		listed[match[1]] = true
	}
	for name := range fams {
		if strings.HasPrefix(name, "taskhost_") {
			require.True(t, listed[name], "docs/health.md does not list %s", name)
			delete(listed, name)
		}
	}
	require.Empty(t, listed, "docs/health.md lists metrics that do not exist")
}

// The schedule series: one per entry, the timestamps only once known.
func TestSchedules(t *testing.T) {
	t.Parallel()
	m, _ := setup(t)
	require.NoError(t, m.RegisterSchedules(func() []metrics.ScheduleStat {
		return []metrics.ScheduleStat{
			{Name: "schedules.a", Next: 1700000060, LastRun: 1700000000, Ticks: map[string]uint64{"enqueued": 3, "duplicate": 5, "missed": 0}},
			{Name: "plugins.p.t", Next: 1700000030, Ticks: map[string]uint64{"enqueued": 0}},
		}
	}))
	_, fams := scrape(t, m.Gatherer())
	require.Equal(t, 1700000060.0, value(t, fams, "taskhost_schedule_next_run_timestamp_seconds", map[string]string{"schedule": "schedules.a"}))
	require.Equal(t, 1700000000.0, value(t, fams, "taskhost_schedule_last_run_timestamp_seconds", map[string]string{"schedule": "schedules.a"}))
	require.Equal(t, 5.0, value(t, fams, "taskhost_schedule_ticks_total", map[string]string{"schedule": "schedules.a", "result": "duplicate"}))
	require.Len(t, fams["taskhost_schedule_last_run_timestamp_seconds"].GetMetric(), 1, "no last run before the first")
	problems, err := testutil.GatherAndLint(m.Gatherer())
	require.NoError(t, err)
	require.Empty(t, problems)
}
