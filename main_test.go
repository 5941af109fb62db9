package taskhost_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-redis' pool and otter start package-level goroutines on first use.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"),
		// A pool's background redial sleeps a second before it sees the pool closed.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"),
	)
}

// testConfig returns a valid config for a runtime on the Redis at addr,
// with the health listener on a free loopback port and no plugins.
func testConfig(t testing.TB, addr string) taskhost.Config {
	t.Helper()
	cfg := taskhost.DefaultConfig()
	host, port := splitHostPort(t, addr)
	cfg.Redis.Host, cfg.Redis.Port = host, port
	cfg.Health.Addr = "127.0.0.1:0"
	cfg.Worker.ShutdownTimeout = 5 * time.Second
	cfg.Log.Level = "warn"
	return cfg
}

// startRuntime starts a runtime for cfg and stops it in t.Cleanup.
func startRuntime(t testing.TB, cfg taskhost.Config, logOut ...io.Writer) *taskhost.Runtime {
	t.Helper()
	var w io.Writer = io.Discard
	if len(logOut) > 0 {
		w = logOut[0]
	}
	rt, err := taskhost.New(cfg, taskhost.Options{Logger: taskhost.NewLogger(cfg.Log, w), Version: "test"})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, rt.Stop(ctx))
	})
	return rt
}

// waitState waits up to d for the runtime's connection state to be want.
func waitState(t testing.TB, rt *taskhost.Runtime, d time.Duration, want string) {
	t.Helper()
	require.Eventually(t, func() bool { return rt.State().String() == want }, d, 10*time.Millisecond,
		"state is %s, want %s", rt.State(), want)
}

var _ = slog.LevelInfo
var _ = redistest.Start
