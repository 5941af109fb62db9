package taskhost

import (
	"fmt"
	"log/slog"

	"github.com/alicebob/miniredis/v2"
)

// startEmbedded starts the in-process development Redis (miniredis) on addr.
// Its data lives only in this process.
func startEmbedded(addr string, log *slog.Logger) (*miniredis.Miniredis, error) {
	m := miniredis.NewMiniRedis()
	// Expire keys on the wall clock, as a real Redis does; asynq's leases
	// and the cache's TTLs depend on it.
	m.ClockTTL(true)
	if err := m.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("embedded redis on %s (redis.embedded.addr): %w; another -dev worker may be running: "+
			"set REDIS_EMBEDDED_ADDR=127.0.0.1:<free port> for this worker and for `worker enqueue -dev`", addr, err)
	}
	log.Warn("EMBEDDED REDIS: development mode, all queued tasks and cached data live only in this process and are lost when it exits; set redis.mode and redis.url for production",
		"component", "redis", "addr", m.Addr())
	return m, nil
}
