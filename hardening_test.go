package taskhost_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/redistest"
)

// TestURLWithPasswordFromEnv: a redis.url without credentials (as the docs
// ask: no secret in the file) and the password in REDIS_PASSWORD.
func TestURLWithPasswordFromEnv(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{Password: "env-pw-15"})
	cfg, err := taskhost.LoadConfig(taskhost.LoadOptions{Environ: []string{
		"REDIS_URL=redis://" + s.Addr() + "/0",
		"REDIS_PASSWORD=env-pw-15",
		"HEALTH_ADDR=127.0.0.1:0",
	}})
	require.NoError(t, err)
	rt := startRuntime(t, cfg)
	waitState(t, rt, 10*time.Second, "ready")
}

// TestAuthFailureInHealth: a wrong password shows in /healthz last_error,
// and is logged once as an authentication problem, not as an outage.
func TestAuthFailureInHealth(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{Password: "right-pw-15"})
	cfg := testConfig(t, s.Addr())
	cfg.Redis.Password = "wrong-pw-15"
	cfg.Log.Level = "info"
	logs := &h5Log{}
	rt := startRuntime(t, cfg, logs)
	base := "http://" + rt.HealthAddr()
	require.Eventually(t, func() bool {
		_, rep, _ := h5Report(t, base)
		return rep.Connection != nil && rep.Connection.State == "down" &&
			strings.HasPrefix(rep.Connection.LastError, "WRONGPASS")
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, 1, strings.Count(logs.String(), "redis refused authentication"), logs.String())
	require.NotContains(t, logs.String(), "redis down")
	require.NotContains(t, logs.String(), "right-pw-15")
	require.NotContains(t, logs.String(), "wrong-pw-15")
}
