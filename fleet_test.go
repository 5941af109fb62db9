package taskhost

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
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
