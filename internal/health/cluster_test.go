package health_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/health"
	"github.com/taskhost/taskhost/internal/redistest"
)

func TestInfoFuncOnCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), DialTimeout: 500 * time.Millisecond,
		ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	for i := range 20 {
		require.NoError(t, c.Set(ctx, "k"+string(rune('a'+i)), "v", time.Minute).Err())
	}

	info, err := health.InfoFunc(c)(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, info.Version)
	require.EqualValues(t, 20, info.DBSize, "DBSIZE is summed over the masters")
	require.NotNil(t, info.Cluster)
	require.Equal(t, health.ClusterInfo{State: "ok", SlotsOK: 16384, Size: 3, KnownNodes: 6, ReachableNodes: 6},
		*info.Cluster)

	// A replica dies: the cluster still serves every slot, but not every
	// node answers, and the report says so.
	var replica *redistest.Server
	masters := map[string]bool{}
	for _, m := range cl.Masters() {
		masters[m.Addr()] = true
	}
	for _, n := range cl.Nodes() {
		if !masters[n.Addr()] {
			replica = n
			break
		}
	}
	require.NotNil(t, replica)
	replica.Kill()
	require.Eventually(t, func() bool {
		info, err = health.InfoFunc(c)(ctx)
		return err == nil && info.Cluster.ReachableNodes == 5
	}, 5*time.Second, 50*time.Millisecond, "info %+v, err %v", info.Cluster, err)
	require.EqualValues(t, 6, info.Cluster.KnownNodes)
	require.Equal(t, "ok", info.Cluster.State)

	h := health.NewHandler(health.Options{
		Source: health.Source{Redis: health.InfoFunc(c)},
		Logger: slog.New(slog.DiscardHandler),
	})
	rep := h.Report(ctx)
	require.Equal(t, health.StatusDegraded, rep.Status)
	require.Contains(t, rep.Reasons, "redis cluster: 5 of 6 nodes reachable")
}

func TestClusterStatusRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		ci      health.ClusterInfo
		status  health.Status
		reasons []string
	}{
		{"healthy", health.ClusterInfo{State: "ok", SlotsOK: 16384, Size: 3, KnownNodes: 6, ReachableNodes: 6},
			health.StatusOK, []string{}},
		{"slots not served", health.ClusterInfo{State: "fail", SlotsOK: 10923, Size: 3, KnownNodes: 6, ReachableNodes: 5},
			health.StatusDegraded, []string{"redis cluster state is fail", "redis cluster: 5 of 6 nodes reachable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := health.NewHandler(health.Options{
				Source: health.Source{Redis: func(context.Context) (health.RedisInfo, error) {
					ci := tc.ci
					return health.RedisInfo{Version: "7.2.4", Cluster: &ci}, nil
				}},
				Logger: slog.New(slog.DiscardHandler),
			})
			rep := h.Report(context.Background())
			require.Equal(t, tc.status, rep.Status)
			require.Equal(t, tc.reasons, rep.Reasons)
		})
	}
}

func TestReachableNodes(t *testing.T) {
	t.Parallel()
	text := "a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460\n" +
		"b2 127.0.0.1:7001@17001 master - 0 1700000000000 2 connected 5461-10922\n" +
		"c3 127.0.0.1:7002@17002 master,fail? - 1700000000000 0 3 connected 10923-16383\n" +
		"d4 127.0.0.1:7003@17003 slave a1 0 1700000000000 1 disconnected\n" +
		"e5 127.0.0.1:7004@17004 slave,fail b2 0 1700000000000 2 connected\n" +
		"f6 127.0.0.1:7005@17005 slave c3 0 1700000000000 3 connected\n"
	require.EqualValues(t, 3, health.ReachableNodes(text))
}

func TestParseClusterInfo(t *testing.T) {
	t.Parallel()
	text := "cluster_enabled:1\r\ncluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n" +
		"cluster_slots_pfail:0\r\ncluster_known_nodes:6\r\ncluster_size:3\r\ncluster_current_epoch:6\r\n"
	require.Equal(t, health.ClusterInfo{State: "ok", SlotsOK: 16384, Size: 3, KnownNodes: 6},
		health.ParseClusterInfo(text))
}

func ExampleReachableNodes() {
	nodes := "a1 10.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-8191\n" +
		"b2 10.0.0.2:6379@16379 master - 0 1700000000000 2 connected 8192-16383\n" +
		"c3 10.0.0.3:6379@16379 slave,fail a1 0 1700000000000 1 disconnected\n"
	fmt.Println(health.ReachableNodes(nodes), "of", 3)
	// Output: 2 of 3
}
