package redisconn

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Diagnostics is a snapshot of the server and the client's pool, for the
// health report and Runtime.Diagnostics. It holds no secret.
type Diagnostics struct {
	PingLatency time.Duration `json:"ping_latency"`
	Server
	Pool PoolStats `json:"pool"`
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

// Diagnose pings Redis, reads INFO and DBSIZE (ReadServer), and copies the
// pool stats. It respects ctx; on error the fields filled so far (always
// Pool) are returned with it.
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
	var err error
	if d.Server, err = ReadServer(ctx, client); err != nil {
		return d, fmt.Errorf("redisconn: diagnose: %w", err)
	}
	return d, nil
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
