package taskhost

import (
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/redisconn"
)

// NewRedisClient builds a Redis client for cfg with taskhost's explicit
// timeouts and no retries, so that an unreachable Redis fails a call in about
// a second. It is for programs that need the connection without a Runtime,
// such as a command that enqueues one task; a Runtime builds its own. The
// caller closes the client. The error matches ErrInvalidConfig.
func NewRedisClient(cfg RedisConfig, logger *slog.Logger) (redis.UniversalClient, error) {
	var opts []redisconn.Option
	if logger != nil {
		opts = append(opts, redisconn.WithLogger(logger))
	}
	c, err := redisconn.NewClient(cfg.conn(), opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: redis: %v", ErrInvalidConfig, err)
	}
	return c, nil
}

// Target describes where cfg points, for logs and messages: the mode and the
// address, never a password.
func (r RedisConfig) Target() string { return redisconn.Describe(r.conn()) }
