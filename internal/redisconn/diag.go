package redisconn

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Diagnostics is a snapshot of the server and the client's pool, for the
// health report. It holds no secret.
type Diagnostics struct {
	PingLatency        time.Duration     `json:"ping_latency"`
	Version            string            `json:"version"`
	Mode               string            `json:"mode"` // redis_mode: standalone, sentinel, cluster
	UsedMemory         int64             `json:"used_memory_bytes"`
	PeakMemory         int64             `json:"peak_memory_bytes"`
	FragmentationRatio float64           `json:"fragmentation_ratio"`
	ConnectedClients   int64             `json:"connected_clients"`
	DBSize             int64             `json:"dbsize"`
	Pool               PoolStats         `json:"pool"`
	Info               map[string]string `json:"info,omitempty"` // the whole INFO reply, parsed
}

// PoolStats are the client's connection pool counters.
type PoolStats struct {
	Hits       uint32 `json:"hits"`
	Misses     uint32 `json:"misses"`
	Timeouts   uint32 `json:"timeouts"`
	TotalConns uint32 `json:"total_conns"`
	IdleConns  uint32 `json:"idle_conns"`
	StaleConns uint32 `json:"stale_conns"`
}

// Diagnose pings Redis, reads INFO and DBSIZE, and copies the pool stats. It
// respects ctx; on error the fields filled so far (always Pool) are returned
// with it. In cluster mode INFO comes from one node and DBSIZE is summed over
// the masters by go-redis.
func Diagnose(ctx context.Context, client redis.UniversalClient) (Diagnostics, error) {
	var d Diagnostics
	if ps := client.PoolStats(); ps != nil {
		d.Pool = PoolStats{Hits: ps.Hits, Misses: ps.Misses, Timeouts: ps.Timeouts,
			TotalConns: ps.TotalConns, IdleConns: ps.IdleConns, StaleConns: ps.StaleConns}
	}
	start := time.Now()
	if err := client.Ping(ctx).Err(); err != nil {
		return d, fmt.Errorf("redisconn: diagnose: ping: %w", err)
	}
	d.PingLatency = time.Since(start)

	raw, err := client.Info(ctx).Result()
	if err != nil {
		return d, fmt.Errorf("redisconn: diagnose: info: %w", err)
	}
	d.Info = ParseInfo(raw)
	d.Version = d.Info["redis_version"]
	d.Mode = d.Info["redis_mode"]
	d.UsedMemory = atoi(d.Info["used_memory"])
	d.PeakMemory = atoi(d.Info["used_memory_peak"])
	d.FragmentationRatio, _ = strconv.ParseFloat(d.Info["mem_fragmentation_ratio"], 64)
	d.ConnectedClients = atoi(d.Info["connected_clients"])

	if d.DBSize, err = client.DBSize(ctx).Result(); err != nil {
		return d, fmt.Errorf("redisconn: diagnose: dbsize: %w", err)
	}
	return d, nil
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// FlushDB deletes every key of the configured database (on every master in
// cluster mode), queued tasks included. It is DANGEROUS: meant for tests and
// deliberate operator tooling in Go, and never to be exposed over HTTP.
func FlushDB(ctx context.Context, client redis.UniversalClient) error {
	if cc, ok := client.(*redis.ClusterClient); ok {
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.FlushDB(ctx).Err()
		})
		if err != nil {
			return fmt.Errorf("redisconn: flushdb: %w", err)
		}
		return nil
	}
	if err := client.FlushDB(ctx).Err(); err != nil {
		return fmt.Errorf("redisconn: flushdb: %w", err)
	}
	return nil
}
