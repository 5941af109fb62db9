package redisconn_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redisconn"
	"github.com/taskhost/taskhost/internal/redistest"
)

// TestBlipIsOneWarning: a connection loss that recovers before it counts as
// down is one line, at its end, a warning with its duration; Annotate's
// attributes are on each transition's line.
func TestBlipIsOneWarning(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{AOF: true})
	var calls []string
	f := setup(t, cfgFor(t, s.Addr()), func(o *redisconn.MonitorOptions) {
		o.DownAfter = time.Hour // never down: the blip ends first
		o.Annotate = func(from, to redisconn.State) []any {
			calls = append(calls, from.String()+">"+to.String()) // on the monitor's goroutine only
			return []any{"note", to.String()}
		}
	})
	waitState(t, f.mon, 2*time.Second, redisconn.Ready)
	s.Kill()
	waitState(t, f.mon, 3*time.Second, redisconn.Reconnecting)
	s.MustRestart(t)
	waitState(t, f.mon, 5*time.Second, redisconn.Ready)
	f.mon.Close()

	recs := f.logs.records(t)
	require.Len(t, recs, 2, "%s", f.logs.String())
	require.Equal(t, "INFO", recs[0]["level"])
	require.Equal(t, "WARN", recs[1]["level"])
	require.Equal(t, "redis ready", recs[1]["msg"])
	require.Equal(t, "reconnecting", recs[1]["from"])
	require.Equal(t, "ready", recs[1]["note"])
	require.NotEmpty(t, recs[1]["outage"])
	require.Equal(t, []string{"connecting>ready", "ready>reconnecting", "reconnecting>ready", "ready>closed"}, calls)
}

// TestNoRestartCheck: the embedded Redis' monitor never runs the check,
// which an in-process Redis that cannot restart alone does not need (and
// miniredis would refuse, with a warning on every start).
func TestNoRestartCheck(t *testing.T) {
	t.Parallel()
	cfg := redisconn.DefaultConfig()
	cfg.Mode = redisconn.ModeEmbedded
	require.True(t, redisconn.MonitorOptionsFrom(cfg, nil).NoRestartCheck)
	cfg.Mode = redisconn.ModeStandalone
	require.False(t, redisconn.MonitorOptionsFrom(cfg, nil).NoRestartCheck)

	s := redistest.Start(t)
	f := setup(t, cfgFor(t, s.Addr()), func(o *redisconn.MonitorOptions) { o.NoRestartCheck = true })
	waitState(t, f.mon, 2*time.Second, redisconn.Ready)
	n, err := f.client.Exists(t.Context(), redisconn.DefaultMarkerKey).Result()
	require.NoError(t, err)
	require.Zero(t, n, "no marker written")
}
