package redisconn_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/connerr"
	"github.com/taskhost/taskhost/internal/redisconn"
	"github.com/taskhost/taskhost/internal/redistest"
)

// TestAuthRefusalLoggedOnceAsAuth: a server that wants a password the
// config lacks, or gets a wrong one, is reported once, as an authentication
// problem naming the keys to check, never as "redis down".
func TestAuthRefusalLoggedOnceAsAuth(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{Password: "right-pw"})
	for name, pass := range map[string]string{"none": "", "wrong": "wrong-pw"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := cfgFor(t, s.Addr())
			cfg.Password = pass
			f := setup(t, cfg, func(o *redisconn.MonitorOptions) {
				o.DownAfter, o.BackoffMin, o.BackoffMax = 200*time.Millisecond, 20*time.Millisecond, 50*time.Millisecond
			})
			waitState(t, f.mon, 5*time.Second, redisconn.Down)
			// Several failed probes (every 50 ms) later, still one line.
			require.Eventually(t, func() bool { return time.Since(f.mon.Since()) > 400*time.Millisecond },
				5*time.Second, 20*time.Millisecond)
			var errs []map[string]any
			for _, r := range f.logs.records(t) {
				if r["level"] == "ERROR" {
					errs = append(errs, r)
				}
			}
			require.Len(t, errs, 1, f.logs.String())
			require.Contains(t, errs[0]["msg"], "redis refused authentication")
			require.Contains(t, errs[0]["msg"], "redis.password")
			require.Equal(t, connerr.ProblemAuth, errs[0]["problem"])
			require.NotContains(t, f.logs.String(), "redis down")
			require.NotContains(t, f.logs.String(), "right-pw")
		})
	}
}
