package taskhost

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/internal/schedule"
)

// TestFleetCountsProcesses checks fleetWorkers, which reads asynq's
// registry of servers in one command, against asynq's Inspector: the same
// servers, and one process for servers of the same host and PID. It fails
// when an asynq upgrade changes how servers are registered.
func TestFleetCountsProcesses(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c := quickClient(t, s.Addr())
	for range 3 { // three fetchers of this process
		srv := asynq.NewServerFromRedisClient(c, asynq.Config{Concurrency: 1, LogLevel: asynq.FatalLevel})
		require.NoError(t, srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })))
		t.Cleanup(srv.Shutdown)
	}
	insp := asynq.NewInspectorFromRedisClient(c)
	t.Cleanup(func() { _ = insp.Close() })
	var servers []*asynq.ServerInfo
	require.Eventually(t, func() bool {
		var err error
		servers, err = insp.Servers()
		return err == nil && len(servers) == 3
	}, 10*time.Second, 20*time.Millisecond)
	procs := map[string]bool{}
	for _, si := range servers {
		procs[si.Host+":"+strconv.Itoa(si.PID)] = true
	}
	p, n, err := fleetWorkers(context.Background(), c)
	require.NoError(t, err)
	require.Equal(t, len(servers), n)
	require.Equal(t, len(procs), p)
	require.Equal(t, 1, p)

	// A server of another process, as its heartbeat writes it.
	require.NoError(t, c.ZAdd(context.Background(), serversKey, redisZ(time.Now().Add(10*time.Second), "asynq:servers:{other-host:4242:abc-123}")).Err())
	// A dead one, whose heartbeat expired.
	require.NoError(t, c.ZAdd(context.Background(), serversKey, redisZ(time.Now().Add(-time.Second), "asynq:servers:{dead-host:1:def-456}")).Err())
	p, n, err = fleetWorkers(context.Background(), c)
	require.NoError(t, err)
	require.Equal(t, 2, p)
	require.Equal(t, 4, n)
}

func redisZ(expiry time.Time, member string) redis.Z {
	return redis.Z{Score: float64(expiry.Unix()), Member: member}
}

// The registry's encoding, read back by asynq's Inspector: every field,
// times to the nanosecond.
func TestCronEntryEncoding(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c := quickClient(t, s.Addr())
	next := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	last := next.Add(-time.Minute)
	st := []schedule.Status{
		{Name: "schedules.a", Spec: "@every 1m", Type: "t:a", Options: []string{`Queue("low")`, `MaxRetry(2)`}, Next: next, LastRun: last},
		{Name: "plugins.p.t:b", Spec: "0 3 * * *", Type: "t:b"},
	}
	r := newCronRegistry(c, func() []schedule.Status { return st }, slog.New(slog.DiscardHandler))
	r.write()
	insp := asynq.NewInspectorFromRedisClient(c)
	t.Cleanup(func() { _ = insp.Close() })
	entries, err := insp.SchedulerEntries()
	require.NoError(t, err)
	require.Len(t, entries, 2)
	byID := map[string]*asynq.SchedulerEntry{}
	for _, e := range entries {
		byID[e.ID] = e
	}
	a := byID["schedules.a"]
	require.NotNil(t, a)
	require.Equal(t, "@every 1m", a.Spec)
	require.Equal(t, "t:a", a.Task.Type())
	require.True(t, next.Equal(a.Next), "%s", a.Next)
	require.True(t, last.Equal(a.Prev), "%s", a.Prev)
	require.Len(t, a.Opts, 2)
	require.Equal(t, `Queue("low")`, a.Opts[0].String())
	b := byID["plugins.p.t:b"]
	require.NotNil(t, b)
	require.Empty(t, b.Opts)
	require.Equal(t, int64(0), b.Prev.Unix(), "never run, as asynq shows its own")
	r.shutdown()
}
