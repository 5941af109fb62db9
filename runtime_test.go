package taskhost_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/redistest"
)

func TestStartWithRedisAbsentThenReady(t *testing.T) {
	t.Parallel()
	addr := redistest.ClosedAddr(t)
	cfg := testConfig(t, addr)

	begin := time.Now()
	rt, err := taskhost.New(cfg, taskhost.Options{Logger: taskhost.NewLogger(cfg.Log, nil2discard())})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	require.Less(t, time.Since(begin), 100*time.Millisecond, "creating and starting must not wait for Redis")
	t.Cleanup(func() { require.NoError(t, rt.Stop(context.Background())) })

	waitState(t, rt, 3*time.Second, "down")
	_, port := splitHostPort(t, addr)
	s, err := redistest.New(redistest.Options{Port: port})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	waitState(t, rt, 2*time.Second, "ready")
}

func TestStopTwice(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	rt := startRuntime(t, testConfig(t, s.Addr()))
	require.NoError(t, rt.Stop(context.Background()))
	require.NoError(t, rt.Stop(context.Background()))
}

func TestStopWithoutStartReleasesResources(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	cfg := testConfig(t, s.Addr())
	rt, err := taskhost.New(cfg, taskhost.Options{Logger: taskhost.NewLogger(cfg.Log, nil2discard())})
	require.NoError(t, err)
	require.NoError(t, rt.Stop(context.Background())) // goleak in TestMain checks nothing is left
}
