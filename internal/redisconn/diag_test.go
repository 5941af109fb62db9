package redisconn_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redisconn"
	"github.com/taskhost/taskhost/internal/redistest"
)

func TestDiagnose(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c := newClient(t, cfgFor(t, s.Addr()))
	ctx := context.Background()
	for i := range 3 {
		require.NoError(t, c.Set(ctx, fmt.Sprint("k", i), "v", 0).Err())
	}
	d, err := redisconn.Diagnose(ctx, c)
	require.NoError(t, err)
	require.Positive(t, d.PingLatency)
	require.Less(t, d.PingLatency, time.Second)
	require.Regexp(t, `^\d+\.\d+\.\d+`, d.Version)
	require.Equal(t, d.Version, d.Info["redis_version"])
	require.Equal(t, "standalone", d.Mode)
	require.Positive(t, d.UsedMemory)
	require.GreaterOrEqual(t, d.PeakMemory, d.UsedMemory/2)
	require.Positive(t, d.FragmentationRatio)
	require.GreaterOrEqual(t, d.ConnectedClients, int64(1))
	require.Equal(t, int64(3), d.DBSize)
	require.GreaterOrEqual(t, d.Pool.TotalConns, uint32(1))
	require.Contains(t, d.Info["executable"], "/", "values with ':' or '/' are kept whole")
}

// TestDiagnoseRespectsContext: against a frozen Redis, Diagnose returns when
// its context ends, before the client's read timeout.
func TestDiagnoseRespectsContext(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c := newClient(t, cfgFor(t, s.Addr()))
	require.NoError(t, c.Ping(context.Background()).Err())
	s.Pause()
	defer s.Resume()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	d, err := redisconn.Diagnose(ctx, c)
	took := time.Since(start)
	require.Error(t, err)
	require.Contains(t, err.Error(), "ping")
	require.Less(t, took, 450*time.Millisecond, "the 500 ms read timeout must not be waited out")
	require.GreaterOrEqual(t, d.Pool.TotalConns, uint32(1), "pool stats come even on error")
}

func TestParseInfo(t *testing.T) {
	t.Parallel()
	raw := "# Server\r\nredis_version:7.0.15\r\nexecutable:/usr/bin/redis-server\r\nconfig_file:\r\n\r\n" +
		"# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\nrdb_last_save_time:1700000000\r\nmaster_host:10.0.0.1:6379\r\nnot a pair\r\n"
	got := redisconn.ParseInfo(raw)
	require.Equal(t, map[string]string{
		"redis_version":      "7.0.15",
		"executable":         "/usr/bin/redis-server",
		"config_file":        "",
		"db0":                "keys=3,expires=0,avg_ttl=0",
		"rdb_last_save_time": "1700000000",
		"master_host":        "10.0.0.1:6379",
	}, got)
	require.Empty(t, redisconn.ParseInfo(""))
	require.False(t, strings.Contains(fmt.Sprint(got), "#"))
}

func TestServerFromInfo(t *testing.T) {
	t.Parallel()
	info := redisconn.ParseInfo("# Server\r\nredis_version:7.2.4\r\nredis_mode:standalone\r\nuptime_in_seconds:93\r\n\r\n" +
		"# Clients\r\nconnected_clients:5\r\n# Memory\r\nused_memory:1048576\r\nused_memory_peak:2097152\r\n" +
		"maxmemory:0\r\nmem_fragmentation_ratio:1.25\r\nbogus\r\n")
	require.Equal(t, redisconn.Server{Version: "7.2.4", Mode: "standalone", UptimeSeconds: 93, ConnectedClients: 5,
		UsedMemory: 1 << 20, PeakMemory: 2 << 20, FragmentationRatio: 1.25, Info: info}, redisconn.ServerFromInfo(info))
}
