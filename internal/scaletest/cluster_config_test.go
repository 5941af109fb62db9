package scaletest

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
)

// TestClusterConfigRefusals checks that what cannot work on Redis Cluster
// is refused when the runtime is built, before any connection, with an
// error that names the key and says why: a queue name with "{" or "}" (a
// leading "}" makes asynq's keys CROSSSLOT, see TestAsynqOnCluster; any
// brace changes which slot the queue lands in), and a database other
// than 0. Everything else was found to work on a cluster
// (TestRuntimeOnCluster, TestAsynqOnCluster).
func TestClusterConfigRefusals(t *testing.T) {
	t.Parallel()
	cluster := func() taskhost.Config {
		cfg := taskhost.DefaultConfig()
		cfg.Redis.Mode = taskhost.ModeCluster
		cfg.Redis.Addrs = []string{"127.0.0.1:7000"}
		return cfg
	}
	for _, tc := range []struct {
		name   string
		change func(*taskhost.Config)
		want   []string
	}{
		{"queue name starting with a closing brace", func(c *taskhost.Config) { c.Worker.Queues = map[string]int{"}odd": 1} },
			[]string{`worker.queues.}odd: "}odd" is not a queue name (no "{" or "}": asynq puts the name in a {hash tag} for Redis Cluster)`}},
		{"queue name with a hash tag", func(c *taskhost.Config) { c.Worker.Queues = map[string]int{"a{b}": 1, "ok": 1} },
			[]string{`worker.queues.a{b}: "a{b}" is not a queue name (no "{" or "}"`}},
		{"database other than 0", func(c *taskhost.Config) { c.Redis.DB = 2 },
			[]string{"redis.db: 2 is not supported in cluster mode (Redis Cluster has database 0 only)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := cluster()
			tc.change(&cfg)
			_, err := taskhost.New(cfg, taskhost.Options{})
			require.ErrorIs(t, err, taskhost.ErrInvalidConfig)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}

	// A valid cluster config builds (no network is touched).
	rt, err := taskhost.New(cluster(), taskhost.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, rt.Stop(t.Context()))
}
