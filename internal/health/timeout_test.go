package health_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/health"
)

type hungCollector struct{ b *blocker }

func (c hungCollector) Describe(ch chan<- *prometheus.Desc) {}
func (c hungCollector) Collect(ch chan<- prometheus.Metric) { c.b.wait() }

func TestNoProbeOutlastsTimeoutWhenEverythingHangs(t *testing.T) {
	t.Parallel()
	bl := newBlocker(t)
	b := setup(t)
	b.opts.Timeout = 0 // the default, 1s
	b.opts.Live = func() error { bl.wait(); return nil }
	b.opts.Ready = func() (bool, string) { bl.wait(); return true, "" }
	b.opts.Source = health.Source{
		Connection: func(context.Context) (health.Connection, error) { bl.wait(); return health.Connection{}, nil },
		Ping:       func(context.Context) (time.Duration, error) { bl.wait(); return 0, nil },
		Redis:      func(context.Context) (health.RedisInfo, error) { bl.wait(); return health.RedisInfo{}, nil },
		Queues:     func(context.Context) ([]health.Queue, error) { bl.wait(); return nil, nil },
		Fallbacks:  func(context.Context) ([]health.Fallback, error) { bl.wait(); return nil, nil },
	}
	require.NoError(t, b.reg.Add(health.Check{Name: "frozen", Critical: true, Timeout: time.Minute,
		Run: func(context.Context) error { bl.wait(); return nil }}))
	g := prometheus.NewRegistry()
	g.MustRegister(hungCollector{bl})
	b.opts.Gatherer = g
	srv := httptest.NewServer(b.handler())
	defer srv.Close()

	const bound = health.DefaultTimeout + 100*time.Millisecond
	type answer struct {
		path string
		code int
		body string
		took time.Duration
	}
	paths := []string{"/livez", "/readyz", "/healthz", "/metrics", "/healthz", "/readyz"}
	answers := make([]answer, len(paths))
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Go(func() {
			begin := time.Now()
			resp, err := srv.Client().Get(srv.URL + p)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers[i] = answer{p, resp.StatusCode, string(body), time.Since(begin)}
		})
	}
	wg.Wait()
	for _, a := range answers {
		require.Less(t, a.took, bound, "%s took %s", a.path, a.took)
		require.Equal(t, http.StatusServiceUnavailable, a.code, a.path)
	}
	require.Equal(t, "not live: liveness check did not answer in time\n", answers[0].body)
	require.Equal(t, "not ready: readiness check did not answer in time\n", answers[1].body)
}

func TestHungCheckAndSourceReportTimeout(t *testing.T) {
	t.Parallel()
	bl := newBlocker(t)
	b := setup(t)
	b.opts.Timeout = 0 // the default, 1s
	b.opts.Source.Redis = func(context.Context) (health.RedisInfo, error) { bl.wait(); return health.RedisInfo{}, nil }
	require.NoError(t, b.reg.Add(health.Check{Name: "frozen", Run: func(context.Context) error { bl.wait(); return nil }}))
	h := b.handler()

	begin := time.Now()
	w := serve(t, h, http.MethodGet, "/healthz")
	took := time.Since(begin)
	require.Less(t, took, health.DefaultTimeout+100*time.Millisecond)
	require.Greater(t, took, health.DefaultTimeout/2, "it waited for the slow ones, not gave up at once")
	rep := report(t, w)
	require.Equal(t, health.StatusDegraded, rep.Status, "a non-critical check and a section time out")
	var frozen health.CheckResult
	for _, c := range rep.Checks {
		if c.Name == "frozen" {
			frozen = c
		} else {
			require.Equal(t, health.CheckOK, c.Status, "the other checks still answer")
		}
	}
	require.Equal(t, health.CheckTimeout, frozen.Status)
	for _, s := range rep.Sources {
		if s.Name == "redis" {
			require.Equal(t, health.CheckTimeout, s.Status)
		} else {
			require.Equal(t, health.CheckOK, s.Status, s.Name)
		}
	}
	require.NotNil(t, rep.Redis.PingMS, "ping still answered")
	require.Nil(t, rep.Redis.RedisInfo, "no stale INFO is shown")
	require.Contains(t, rep.Reasons, `check "frozen" timed out`)
	require.Contains(t, rep.Reasons, `source "redis" timed out`)
}
