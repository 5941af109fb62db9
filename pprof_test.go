package taskhost_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
)

// pprofGet GETs path on the runtime's admin listener with the Host header
// host (when set) and a bearer token (when set).
func pprofGet(t *testing.T, addr, path, host, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	require.NoError(t, err)
	if host != "" {
		req.Host = host
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// The pprof endpoints are off by default.
func TestPprofOffByDefault(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	rt := startRuntime(t, testConfig(t, s.Addr()))
	code, _ := pprofGet(t, rt.HealthAddr(), "/debug/pprof/", "", "")
	require.Equal(t, http.StatusNotFound, code)
}

// With health.pprof on a loopback listener, the profiles are served to
// requests addressed to a loopback name, and a CPU profile can be taken;
// a request for another host (DNS rebinding) is refused.
func TestPprofOnLoopback(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	cfg := testConfig(t, s.Addr())
	cfg.Health.Pprof = true
	rt := startRuntime(t, cfg)
	addr := rt.HealthAddr()
	code, body := pprofGet(t, addr, "/debug/pprof/", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(body), "goroutine")
	code, body = pprofGet(t, addr, "/debug/pprof/profile?seconds=1", "localhost", "")
	require.Equal(t, http.StatusOK, code)
	require.NotEmpty(t, body, "a CPU profile")
	code, _ = pprofGet(t, addr, "/debug/pprof/", "attacker.example", "")
	require.Equal(t, http.StatusForbidden, code)
}

// With the ui.auth credentials set, every pprof request must present them.
func TestPprofWithCredentials(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	cfg := testConfig(t, s.Addr())
	cfg.Health.Pprof = true
	cfg.UI.Auth.Token = "pprof-test-token"
	rt := startRuntime(t, cfg)
	addr := rt.HealthAddr()
	code, _ := pprofGet(t, addr, "/debug/pprof/", "", "")
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = pprofGet(t, addr, "/debug/pprof/", "", "wrong")
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = pprofGet(t, addr, "/debug/pprof/cmdline", "", "pprof-test-token")
	require.Equal(t, http.StatusOK, code)
	code, _ = pprofGet(t, addr, "/healthz", "", "")
	require.Equal(t, http.StatusOK, code, "the health endpoints stay open")
}
