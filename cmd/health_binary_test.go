package taskhostcmd_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/healthcheck"
	"github.com/taskhost/taskhost/internal/health"
	"github.com/taskhost/taskhost/internal/redistest"
)

// These tests run the worker binary and probe its health listener.

// h5Client has a timeout well above health.timeout, so a slow probe is
// measured rather than cut short.
var h5Client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// h5Endpoints are the paths every probe round visits.
var h5Endpoints = []string{"/livez", "/readyz", "/healthz", "/metrics"}

type h5Answer struct {
	code int
	body string
	hdr  http.Header
	took time.Duration
}

func h5Do(t *testing.T, method, url string, hdr http.Header) h5Answer {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header[k] = v
	}
	begin := time.Now()
	resp, err := h5Client.Do(req)
	require.NoError(t, err, "%s %s", method, url)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return h5Answer{code: resp.StatusCode, body: string(body), hdr: resp.Header, took: time.Since(begin)}
}

// h5Round GETs every endpoint concurrently, each timed on its own.
func h5Round(t *testing.T, base string) map[string]h5Answer {
	t.Helper()
	out := make(map[string]h5Answer, len(h5Endpoints))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range h5Endpoints {
		wg.Go(func() {
			a := h5Do(t, http.MethodGet, base+p, nil)
			mu.Lock()
			out[p] = a
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// h5Decode decodes a /healthz body strictly into a Report.
func h5Decode(t *testing.T, body string) health.Report {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	var rep health.Report
	require.NoError(t, dec.Decode(&rep), "/healthz is a Report:\n%s", body)
	require.NotEmpty(t, rep.Version)
	require.NotNil(t, rep.Connection)
	require.Len(t, rep.Fallbacks, 3)
	return rep
}

func h5ActiveFallbacks(rep health.Report) []string {
	var out []string
	for _, f := range rep.Fallbacks {
		if f.Active {
			out = append(out, f.Component)
		}
	}
	return out
}

// h5WaitOK waits until /healthz says ok.
func h5WaitOK(t *testing.T, base string) {
	t.Helper()
	var rep health.Report
	require.Eventually(t, func() bool {
		a := h5Do(t, http.MethodGet, base+"/healthz", nil)
		rep = h5Decode(t, a.body)
		return rep.Status == health.StatusOK
	}, 5*time.Second, 20*time.Millisecond, "status %s: %v", rep.Status, rep.Reasons)
}

// h5Start starts the worker binary on s with the health listener on a free
// loopback port, and waits until it is ready.
func h5Start(t *testing.T, s *redistest.Server, env ...string) (*worker, string) {
	t.Helper()
	port, err := redistest.FreePort()
	require.NoError(t, err)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	w := startWorker(t, append([]string{"REDIS_URL=" + s.URL(), "HEALTH_ADDR=" + addr}, env...))
	base := "http://" + addr
	waitReadyz(t, base, http.StatusOK, 20*time.Second)
	return w, base
}

// TestBinaryProbesThroughRedisOutage starts the worker with a Redis password
// and a webhook signing secret, SIGKILLs Redis and restarts it, and checks
// the probes at each step, then that neither secret appeared in any answer
// or in the worker's output.
func TestBinaryProbesThroughRedisOutage(t *testing.T) {
	t.Parallel()
	const password, secret = "t5-redis-pw-Qm3x9Lr", "t5-signing-secret-Vb7k2Wd"
	s := redistest.Start(t, redistest.Options{Password: password})
	w, base := h5Start(t, s, "PLUGINS_WEBHOOK_SIGNING_SECRET="+secret, "LOG_FORMAT=json", "LOG_LEVEL=debug")
	var seen []string
	keep := func(round map[string]h5Answer) map[string]h5Answer {
		for p, a := range round {
			seen = append(seen, p+" "+a.body+fmt.Sprint(a.hdr))
		}
		return round
	}

	// Up: all three probes answer 200, and the report is valid and ok once
	// the cache and limiter have followed the monitor back to Redis.
	h5WaitOK(t, base)
	up := keep(h5Round(t, base))
	for _, p := range h5Endpoints {
		require.Equal(t, http.StatusOK, up[p].code, "%s: %s", p, up[p].body)
	}
	rep := h5Decode(t, up["/healthz"].body)
	require.Equal(t, health.StatusOK, rep.Status, "reasons: %v", rep.Reasons)
	require.True(t, rep.Ready)
	require.Equal(t, "ready", rep.Connection.State)
	require.NotNil(t, rep.Redis)
	require.Empty(t, h5ActiveFallbacks(rep))
	require.Contains(t, rep.Connection.Target, s.Addr())

	// SIGKILL: not ready within 2 s, still live, report down or degraded
	// with the active fallbacks listed.
	s.Kill()
	waitReadyz(t, base, http.StatusServiceUnavailable, 2*time.Second)
	down := keep(h5Round(t, base))
	require.Equal(t, http.StatusOK, down["/livez"].code)
	require.Equal(t, http.StatusServiceUnavailable, down["/readyz"].code)
	require.True(t, strings.HasPrefix(down["/readyz"].body, "not ready: "), down["/readyz"].body)
	require.Equal(t, http.StatusOK, down["/metrics"].code)
	rep = h5Decode(t, down["/healthz"].body)
	require.Contains(t, []health.Status{health.StatusDown, health.StatusDegraded}, rep.Status)
	require.False(t, rep.Ready)
	require.Subset(t, h5ActiveFallbacks(rep), []string{"cache", "ratelimit"})
	require.Contains(t, rep.Reasons, "fallback active: cache (depth 0)")
	require.NotEmpty(t, rep.Connection.LastError)
	wantCode := http.StatusOK
	if rep.Status == health.StatusDown {
		wantCode = http.StatusServiceUnavailable
	}
	require.Equal(t, wantCode, down["/healthz"].code)
	// A few more probes during the outage: /livez never fails.
	for range 5 {
		require.Equal(t, http.StatusOK, h5Do(t, http.MethodGet, base+"/livez", nil).code)
		time.Sleep(50 * time.Millisecond)
	}
	keep(h5Round(t, base))

	// Restart: ready again within 2 s.
	s.MustRestart(t)
	waitReadyz(t, base, http.StatusOK, 2*time.Second)
	back := keep(h5Round(t, base))
	for _, p := range h5Endpoints {
		require.Equal(t, http.StatusOK, back[p].code, "%s: %s", p, back[p].body)
	}
	rep = h5Decode(t, back["/healthz"].body)
	require.True(t, rep.Ready)
	require.Equal(t, "ready", rep.Connection.State)

	w.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, w.wait(t, 30*time.Second))

	stderr := w.stderr.String()
	for _, text := range append(seen, stderr, w.stdout.String()) {
		require.NotContains(t, text, password)
		require.NotContains(t, text, secret)
	}
	// The worker's own log: JSON lines, each with a component.
	sc := bufio.NewScanner(strings.NewReader(stderr))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	lines := 0
	for sc.Scan() {
		var rec map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec), "not JSON: %s", sc.Text())
		require.NotEmpty(t, rec["component"], "no component: %s", sc.Text())
		lines++
	}
	require.NoError(t, sc.Err())
	require.Positive(t, lines)
	require.True(t, strings.Contains(stderr, `"level":"DEBUG"`), "LOG_LEVEL=debug is applied")
	require.True(t, strings.Contains(stderr, `"msg":"redis connection lost; reconnecting"`), "the outage was logged")
}

// TestBinaryFrozenRedisProbesWithinTimeout freezes Redis with SIGSTOP and
// times every endpoint: none takes longer than health.timeout (1 s) + 100 ms.
func TestBinaryFrozenRedisProbesWithinTimeout(t *testing.T) {
	t.Parallel()
	const bound = time.Second + 100*time.Millisecond
	s := redistest.Start(t)
	_, base := h5Start(t, s)

	s.Pause()
	t.Cleanup(s.Resume)
	// First while the worker still believes Redis is ready (the Redis
	// sections hang until the deadline), then once it has noticed.
	for _, when := range []string{"just frozen", "after the monitor noticed"} {
		if when != "just frozen" {
			waitReadyz(t, base, http.StatusServiceUnavailable, 5*time.Second)
		}
		round := h5Round(t, base)
		for _, p := range h5Endpoints {
			a := round[p]
			require.LessOrEqual(t, a.took, bound, "%s %s took %s", when, p, a.took)
			t.Logf("%s: %s answered %d in %s", when, p, a.code, a.took.Round(time.Millisecond))
		}
		require.Equal(t, http.StatusOK, round["/livez"].code, when)
		require.Equal(t, http.StatusOK, round["/metrics"].code, when)
		rep := h5Decode(t, round["/healthz"].body)
		require.NotEqual(t, health.StatusOK, rep.Status, when)
		if when == "just frozen" {
			// The ping fails by the client's read timeout or the probe's deadline.
			src := map[string]healthcheck.CheckStatus{}
			for _, r := range rep.Sources {
				src[r.Name] = r.Status
			}
			require.Contains(t, []healthcheck.CheckStatus{healthcheck.CheckFail, healthcheck.CheckTimeout}, src["ping"],
				"sources: %+v", rep.Sources)
		}
	}
	// The queue gauges report the frozen read instead of hanging the scrape.
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(h5Do(t, http.MethodGet, base+"/metrics", nil).body))
	require.NoError(t, err)
	require.Equal(t, 0.0, fams["taskhost_queue_stats_up"].GetMetric()[0].GetGauge().GetValue())
}

// TestBinaryBadRequests checks the answers to requests the listener does
// not serve.
func TestBinaryBadRequests(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	_, base := h5Start(t, s)

	for _, p := range []string{"/", "/nope", "/healthz/extra", "/livez.json", "/debug/pprof/"} {
		require.Equal(t, http.StatusNotFound, h5Do(t, http.MethodGet, base+p, nil).code, p)
	}
	for _, p := range h5Endpoints {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			a := h5Do(t, m, base+p, nil)
			require.Equal(t, http.StatusMethodNotAllowed, a.code, "%s %s", m, p)
			require.Equal(t, "GET, HEAD", a.hdr.Get("Allow"), "%s %s", m, p)
		}
		a := h5Do(t, http.MethodHead, base+p, nil)
		require.Equal(t, http.StatusOK, a.code, "HEAD %s", p)
		require.Empty(t, a.body, "HEAD %s", p)
	}
	// An oversized header is refused by the server itself.
	big := http.Header{"X-Big": []string{strings.Repeat("a", 32<<10)}}
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, h5Do(t, http.MethodGet, base+"/livez", big).code)
}
