package redistest_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskhost/taskhost/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func client(t *testing.T, s *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), DialTimeout: 300 * time.Millisecond,
		ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond, MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestServerKillRestartLosesDataWithoutAOF(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c := client(t, s)
	ctx := context.Background()
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())

	s.Kill()
	require.Error(t, c.Ping(ctx).Err(), "a killed server must not answer")

	s.MustRestart(t)
	require.NoError(t, c.Ping(ctx).Err())
	require.ErrorIs(t, c.Get(ctx, "k").Err(), redis.Nil, "without AOF a restart is empty")
}

func TestServerAOFKeepsDataAcrossKill(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{AOF: true, AppendFsync: "always"})
	c := client(t, s)
	ctx := context.Background()
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	s.Kill()
	s.MustRestart(t)
	got, err := c.Get(ctx, "k").Result()
	require.NoError(t, err)
	require.Equal(t, "v", got)
}

func TestServerPauseFreezesReplies(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c := client(t, s)
	ctx := context.Background()
	require.NoError(t, c.Ping(ctx).Err())
	s.Pause()
	start := time.Now()
	err := c.Ping(ctx).Err()
	require.Error(t, err)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout(), "a paused server times out rather than refusing: %v", err)
	require.Less(t, time.Since(start), 2*time.Second)
	s.Resume()
	require.Eventually(t, func() bool { return c.Ping(ctx).Err() == nil }, 3*time.Second, 20*time.Millisecond)
}

func TestServerPassword(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{Password: "s3cret-test"})
	opt, err := redis.ParseURL(s.URL())
	require.NoError(t, err)
	c := redis.NewClient(opt)
	defer c.Close()
	require.NoError(t, c.Ping(context.Background()).Err())

	anon := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer anon.Close()
	require.Error(t, anon.Ping(context.Background()).Err())
}

func TestClosedAddrRefuses(t *testing.T) {
	t.Parallel()
	addr := redistest.ClosedAddr(t)
	_, err := net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, err)
}
