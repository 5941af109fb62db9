package redistest_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
)

func TestSentinelFailoverPromotesReplica(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t, redistest.SentinelOptions{
		MasterName:       "fixture",
		Data:             redistest.Options{Password: "data-test-pw"},
		SentinelPassword: "sentinel-test-pw",
	})
	require.Equal(t, "fixture", s.MasterName())
	require.Len(t, s.SentinelAddrs(), 3)
	oldMaster, replica := s.Master(), s.Replica()
	require.NotEqual(t, oldMaster.Addr(), replica.Addr())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fc := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: s.MasterName(), SentinelAddrs: s.SentinelAddrs(),
		SentinelPassword: "sentinel-test-pw", Password: "data-test-pw",
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond,
		WriteTimeout: 300 * time.Millisecond, MaxRetries: -1,
	})
	defer fc.Close()
	require.NoError(t, fc.Set(ctx, "before", "1", 0).Err())
	// WAIT makes the write reach the replica, so it must survive the failover.
	n, err := fc.Wait(ctx, 1, time.Second).Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	s.KillMaster()
	addr, err := s.WaitFailover(ctx)
	require.NoError(t, err)
	require.Equal(t, replica.Addr(), addr, "the only replica is promoted")
	require.Same(t, replica, s.Master())
	require.Same(t, oldMaster, s.Replica())

	require.Eventually(t, func() bool { return fc.Set(ctx, "after", "1", 0).Err() == nil },
		10*time.Second, 50*time.Millisecond, "the failover client follows the new master")
	got, err := fc.Get(ctx, "before").Result()
	require.NoError(t, err)
	require.Equal(t, "1", got)
}
