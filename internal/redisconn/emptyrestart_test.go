package redisconn_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redisconn"
	"github.com/taskhost/taskhost/internal/redistest"
)

func fastPing(o *redisconn.MonitorOptions) { o.PingInterval = 100 * time.Millisecond }

// markerSet waits until the monitor has set its marker and seen a run_id.
func markerSet(t *testing.T, f *fixture) string {
	t.Helper()
	ctx := context.Background()
	require.Eventually(t, func() bool {
		n, err := f.client.Exists(ctx, redisconn.DefaultMarkerKey).Result()
		return err == nil && n == 1 && f.mon.LastRunID() != ""
	}, 3*time.Second, 20*time.Millisecond)
	return f.mon.LastRunID()
}

// TestEmptyRestartDetected: a Redis without persistence that is killed and
// restarted comes back empty; the monitor reports it once, at ERROR.
func TestEmptyRestartDetected(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	f := setup(t, cfgFor(t, s.Addr()), fastPing)
	waitState(t, f.mon, 2*time.Second, redisconn.Ready)
	before := markerSet(t, f)
	_, seen := f.mon.EmptyRestart()
	require.False(t, seen)

	s.Kill()
	s.MustRestart(t)
	require.Eventually(t, func() bool { _, ok := f.mon.EmptyRestart(); return ok }, 3*time.Second, 20*time.Millisecond)
	at, _ := f.mon.EmptyRestart()
	require.WithinDuration(t, time.Now(), at, 3*time.Second)
	after := markerSet(t, f) // set again for the next restart
	require.NotEqual(t, before, after)
	require.Equal(t, uint64(1), f.mon.EmptyRestarts())

	var errs []string
	for _, r := range f.logs.records(t) {
		if r["level"] == "ERROR" {
			errs = append(errs, r["msg"].(string))
		}
	}
	require.Len(t, errs, 1, f.logs.String())
	require.True(t, strings.HasPrefix(errs[0],
		"redis restarted empty: tasks queued before the restart are gone; enable AOF persistence"), errs[0])
}

// TestRestartWithAOFNotReported: with AOF (appendfsync always) the data and
// the marker survive a kill, so the new run_id alone is not reported.
func TestRestartWithAOFNotReported(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{AOF: true, AppendFsync: "always"})
	f := setup(t, cfgFor(t, s.Addr()), fastPing)
	waitState(t, f.mon, 2*time.Second, redisconn.Ready)
	before := markerSet(t, f)

	s.Kill()
	s.MustRestart(t)
	// Wait until a check has run against the restarted server.
	require.Eventually(t, func() bool {
		id := f.mon.LastRunID()
		return id != "" && id != before
	}, 3*time.Second, 20*time.Millisecond)
	_, seen := f.mon.EmptyRestart()
	require.False(t, seen, f.logs.String())
	require.Zero(t, f.mon.EmptyRestarts())
	require.NotContains(t, f.logs.String(), "restarted empty")
}

// TestFlushNotReportedAsRestart: FlushDB removes the marker but run_id is
// unchanged, so nothing is reported and the marker comes back.
func TestFlushNotReportedAsRestart(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	f := setup(t, cfgFor(t, s.Addr()), fastPing)
	waitState(t, f.mon, 2*time.Second, redisconn.Ready)
	markerSet(t, f)
	ctx := context.Background()
	require.NoError(t, f.client.Set(ctx, "k", "v", 0).Err())

	require.NoError(t, redisconn.FlushDB(ctx, f.client))
	require.Equal(t, int64(0), f.client.Exists(ctx, "k").Val())
	markerSet(t, f)
	require.Zero(t, f.mon.EmptyRestarts())
}
