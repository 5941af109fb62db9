package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the cache on a shared go-redis client. Keys are
// KeyPrefix + namespace + ":" + key. It never closes the client.
type Redis struct {
	c *core
}

// NewRedis returns a Redis store on client. It panics on a nil client.
func NewRedis(client redis.UniversalClient, opts Options) *Redis {
	if client == nil {
		panic("cache: NewRedis: nil client")
	}
	return &Redis{c: newCore(&redisBackend{client: client}, opts.withDefaults())}
}

// Namespace returns the store of namespace ns. It panics when ns is invalid
// (see ValidateNamespace).
func (r *Redis) Namespace(ns string) Store { return r.c.namespace(ns) }

// Stats returns the hit and miss counts.
func (r *Redis) Stats() Stats { return r.c.stats() }

type redisBackend struct {
	client redis.UniversalClient
}

func redisKey(ns, key string) string { return KeyPrefix + ns + ":" + key }

func (r *redisBackend) get(ctx context.Context, ns, key string) ([]byte, error) {
	v, err := r.client.Get(ctx, redisKey(ns, key)).Bytes()
	if err != nil {
		if errors.Is(err, redis.Nil) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("cache: redis get %s:%s: %w", ns, key, err)
	}
	return v, nil
}

func (r *redisBackend) set(ctx context.Context, ns, key string, value []byte, ttl time.Duration) error {
	// A zero ttl is SET without expiry; a positive one below 1ms is sent as PX 1.
	if err := r.client.Set(ctx, redisKey(ns, key), value, ttl).Err(); err != nil {
		return fmt.Errorf("cache: redis set %s:%s: %w", ns, key, err)
	}
	return nil
}

func (r *redisBackend) del(ctx context.Context, ns, key string) error {
	if err := r.client.Del(ctx, redisKey(ns, key)).Err(); err != nil {
		return fmt.Errorf("cache: redis delete %s:%s: %w", ns, key, err)
	}
	return nil
}
