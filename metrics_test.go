package taskhost_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/plugins"
)

// t5Gate holds t5:block tasks until the test closes the channel it holds.
var t5Gate atomic.Pointer[chan struct{}]

// t5Metrics handles t5:ok (succeeds), t5:fail (fails for good) and t5:block
// (waits for t5Gate).
type t5Metrics struct{}

func (t5Metrics) PluginInfo() plugins.Info {
	return plugins.Info{ID: "t5-metrics", New: func() plugins.Plugin { return t5Metrics{} }}
}

func (t5Metrics) Provision(_ context.Context, h plugins.Host) error {
	h.HandleFunc("t5:ok", func(context.Context, *asynq.Task) error { return nil })
	h.HandleFunc("t5:fail", func(context.Context, *asynq.Task) error {
		return fmt.Errorf("t5: refused: %w", asynq.SkipRetry)
	})
	h.HandleFunc("t5:block", func(ctx context.Context, _ *asynq.Task) error {
		select {
		case <-*t5Gate.Load():
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	return nil
}

func init() { plugins.Register(t5Metrics{}) }

// h5Scrape fetches /metrics and parses it as the Prometheus text format.
func h5Scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := h5Client.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err, "/metrics parses as the text format")
	return fams
}

// h5Value is the value of the series of name whose labels include want, and
// whether there is one. A histogram's value is its sample count.
func h5Value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	for _, m := range fams[name].GetMetric() {
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
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// h5MustValue is h5Value for a series that must exist.
func h5MustValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	v, ok := h5Value(fams, name, want)
	require.True(t, ok, "no series %s%v", name, want)
	return v
}

// h5WaitValue scrapes until the series equals want.
func h5WaitValue(t *testing.T, base, name string, labels map[string]string, want float64, d time.Duration) {
	t.Helper()
	var got float64
	require.Eventually(t, func() bool {
		got, _ = h5Value(h5Scrape(t, base), name, labels)
		return got == want
	}, d, 25*time.Millisecond, "%s%v", name, labels)
	_ = got
}

// TestMetricsFollowTheRuntime runs tasks, the cache, the limiter and an
// outage through a runtime and reads each effect back from /metrics.
func TestMetricsFollowTheRuntime(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	t5Gate.Store(&gate)
	s := redistest.Start(t)
	cfg := testConfig(t, s.Addr())
	cfg.Plugins = map[string]map[string]any{"t5-metrics": {}}
	rt := startRuntime(t, cfg)
	base := "http://" + rt.HealthAddr()
	h5WaitOK(t, base)
	ctx := context.Background()

	fams := h5Scrape(t, base)
	for name, f := range fams {
		if strings.HasPrefix(name, "taskhost_") {
			require.NotEmpty(t, f.GetHelp(), name)
		}
	}
	_, ok := h5Value(fams, "taskhost_tasks_processed_total", map[string]string{"type": "t5:ok"})
	require.False(t, ok, "no task has run yet")
	require.Equal(t, 1.0, h5MustValue(t, fams, "taskhost_redis_state", map[string]string{"state": "ready"}))
	require.Equal(t, 0.0, h5MustValue(t, fams, "taskhost_redis_state", map[string]string{"state": "down"}))
	for _, c := range []string{"cache", "ratelimit"} {
		require.Equal(t, 0.0, h5MustValue(t, fams, "taskhost_fallback_active", map[string]string{"component": c}), c)
	}
	require.Equal(t, 1.0, h5MustValue(t, fams, "taskhost_queue_stats_up", nil))

	// Tasks: three successes, one archived failure, one in flight.
	for range 3 {
		_, err := rt.Client().Enqueue(asynq.NewTask("t5:ok", nil))
		require.NoError(t, err)
	}
	_, err := rt.Client().Enqueue(asynq.NewTask("t5:fail", nil), asynq.MaxRetry(0))
	require.NoError(t, err)
	ok3 := map[string]string{"type": "t5:ok", "queue": "default", "outcome": "success"}
	h5WaitValue(t, base, "taskhost_tasks_processed_total", ok3, 3, 10*time.Second)
	h5WaitValue(t, base, "taskhost_tasks_processed_total",
		map[string]string{"type": "t5:fail", "queue": "default", "outcome": "archived"}, 1, 10*time.Second)
	fams = h5Scrape(t, base)
	require.Equal(t, 3.0, h5MustValue(t, fams, "taskhost_task_duration_seconds", map[string]string{"type": "t5:ok"}))
	_, ok = h5Value(fams, "taskhost_tasks_processed_total", map[string]string{"type": "t5:ok", "outcome": "failure"})
	require.False(t, ok)

	_, err = rt.Client().Enqueue(asynq.NewTask("t5:block", nil))
	require.NoError(t, err)
	h5WaitValue(t, base, "taskhost_tasks_in_flight", nil, 1, 10*time.Second)
	close(gate)
	h5WaitValue(t, base, "taskhost_tasks_in_flight", nil, 0, 5*time.Second)
	h5WaitValue(t, base, "taskhost_tasks_processed_total",
		map[string]string{"type": "t5:block", "outcome": "success"}, 1, 5*time.Second)

	// The queue gauges come from the Inspector; both pools have served.
	fams = h5Scrape(t, base)
	for _, pool := range []string{"app", "queue"} {
		used := h5MustValue(t, fams, "taskhost_redis_pool_hits_total", map[string]string{"pool": pool}) +
			h5MustValue(t, fams, "taskhost_redis_pool_misses_total", map[string]string{"pool": pool})
		require.Positive(t, used, "the %s pool has served connections", pool)
		require.Positive(t, h5MustValue(t, fams, "taskhost_redis_pool_connections", map[string]string{"pool": pool}), pool)
		h5MustValue(t, fams, "taskhost_redis_pool_timeouts_total", map[string]string{"pool": pool})
		h5MustValue(t, fams, "taskhost_redis_pool_idle_connections", map[string]string{"pool": pool})
	}
	require.GreaterOrEqual(t, h5MustValue(t, fams, "taskhost_queue_processed_total", map[string]string{"queue": "default"}), 5.0)
	require.GreaterOrEqual(t, h5MustValue(t, fams, "taskhost_queue_tasks",
		map[string]string{"queue": "default", "state": "archived"}), 1.0)

	// Cache and limiter counters.
	before := h5Scrape(t, base)
	store := rt.Cache().Namespace("t5")
	_, err = store.Get(ctx, "absent")
	require.Error(t, err)
	require.NoError(t, store.Set(ctx, "present", []byte("v"), time.Minute))
	_, err = store.Get(ctx, "present")
	require.NoError(t, err)
	lim, err := rt.Limits().Limiter("t5", "1-M")
	require.NoError(t, err)
	for range 2 {
		_, _ = lim.Allow(ctx, "k")
	}
	after := h5Scrape(t, base)
	delta := func(name string) float64 {
		return h5MustValue(t, after, name, nil) - h5MustValue(t, before, name, nil)
	}
	require.Equal(t, 1.0, delta("taskhost_cache_hits_total"))
	require.Equal(t, 1.0, delta("taskhost_cache_misses_total"))
	require.Equal(t, 2.0, delta("taskhost_ratelimit_checks_total"))
	require.Equal(t, 1.0, delta("taskhost_ratelimit_rejections_total"))

	// An outage: state, transitions, fallbacks and the outbox.
	readyBefore := h5MustValue(t, h5Scrape(t, base), "taskhost_redis_state_transitions_total", map[string]string{"to": "ready"})
	s.Kill()
	h5WaitValue(t, base, "taskhost_redis_state", map[string]string{"state": "ready"}, 0, 3*time.Second)
	_, err = rt.Client().Enqueue(asynq.NewTask("t5:ok", nil))
	require.NoError(t, err)
	fams = h5Scrape(t, base)
	require.Equal(t, 1.0, h5MustValue(t, fams, "taskhost_outbox_depth", nil))
	require.Equal(t, 1.0, h5MustValue(t, fams, "taskhost_fallback_active", map[string]string{"component": "cache"}))
	require.Equal(t, 1.0, h5MustValue(t, fams, "taskhost_fallback_active", map[string]string{"component": "ratelimit"}))
	require.GreaterOrEqual(t, h5MustValue(t, fams, "taskhost_fallback_switches_total", map[string]string{"component": "cache"}), 2.0)
	require.Equal(t, 1.0, h5MustValue(t, fams, "taskhost_redis_state_transitions_total", map[string]string{"to": "reconnecting"}))

	s.MustRestart(t)
	h5WaitValue(t, base, "taskhost_outbox_depth", nil, 0, 5*time.Second)
	h5WaitValue(t, base, "taskhost_tasks_processed_total", ok3, 4, 10*time.Second)
	fams = h5Scrape(t, base)
	require.Equal(t, 1.0, h5MustValue(t, fams, "taskhost_redis_state", map[string]string{"state": "ready"}))
	require.Equal(t, readyBefore+1, h5MustValue(t, fams, "taskhost_redis_state_transitions_total", map[string]string{"to": "ready"}))
	require.Equal(t, 0.0, h5MustValue(t, fams, "taskhost_fallback_active", map[string]string{"component": "cache"}))
}
