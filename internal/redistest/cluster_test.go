package redistest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
)

func TestClusterFormsThreeShards(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	require.Len(t, c.Nodes(), 6)
	require.Len(t, c.Addrs(), 6)
	require.Len(t, c.Masters(), 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(),
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 500 * time.Millisecond,
		WriteTimeout: 500 * time.Millisecond, MaxRetries: -1})
	defer cc.Close()
	shards, err := cc.ClusterShards(ctx).Result()
	require.NoError(t, err)
	require.Len(t, shards, 3)
	for _, sh := range shards {
		require.Len(t, sh.Nodes, 2, "each shard is a master and a replica")
		for _, n := range sh.Nodes {
			require.Equal(t, "127.0.0.1", n.IP, "nodes announce loopback")
		}
	}

	owners := map[string]bool{}
	for i := 0; i < 30; i++ {
		key := fmt.Sprintf("k%d", i)
		require.NoError(t, cc.Set(ctx, key, i, 0).Err())
		require.NoError(t, cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			if n, _ := m.Exists(ctx, key).Result(); n == 1 {
				owners[m.Options().Addr] = true
			}
			return nil
		}))
	}
	require.Len(t, owners, 3, "keys spread over all three masters")

	for _, n := range c.Nodes() {
		nc := redis.NewClient(&redis.Options{Addr: n.Addr()})
		info, err := nc.ClusterInfo(ctx).Result()
		_ = nc.Close()
		require.NoError(t, err)
		require.True(t, strings.Contains(info, "cluster_state:ok"), info)
	}
}

func TestClusterPassword(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, redistest.ClusterOptions{Password: "cluster-test-pw"})
	ctx := context.Background()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), Password: "cluster-test-pw"})
	defer cc.Close()
	require.NoError(t, cc.Set(ctx, "k", "v", 0).Err())

	anon := redis.NewClient(&redis.Options{Addr: c.Addrs()[0]})
	defer anon.Close()
	require.Error(t, anon.Ping(ctx).Err())
}
