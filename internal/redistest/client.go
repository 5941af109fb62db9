package redistest

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/redisconn"
)

// Client returns a go-redis client for addr with the runtime's default
// timeouts and retries (so an unreachable Redis fails a call in about half
// a second), closed in t.Cleanup.
func Client(t testing.TB, addr string) *redis.Client {
	t.Helper()
	d := redisconn.DefaultConfig()
	c := redis.NewClient(&redis.Options{
		Addr:                  addr,
		DialTimeout:           d.DialTimeout,
		ReadTimeout:           d.ReadTimeout,
		WriteTimeout:          d.WriteTimeout,
		PoolTimeout:           d.PoolTimeout,
		MaxRetries:            d.MaxRetries,
		DialerRetries:         d.DialerRetries,
		ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}
