package cache

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by Get for a missing or expired key.
var ErrNotFound = errors.New("cache: key not found")

// Store is a byte-valued cache with per-entry TTLs, scoped to one namespace
// (see Cache.Namespace). Bad input is refused with nothing written: an empty
// key (ErrInvalidKey), a value over the size limit (ErrValueTooLarge) or a
// negative TTL (ErrInvalidTTL). Values are not shared: a caller may modify a
// slice it passed to Set or got from Get.
type Store interface {
	// Get returns the value of key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores value under key for ttl; a zero ttl means no expiry.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// GetOrLoad returns the cached value or calls load once for all
	// concurrent misses of the same key, storing its result for ttl. A load
	// error is returned as it is and nothing is stored.
	GetOrLoad(ctx context.Context, key string, ttl time.Duration, load func(ctx context.Context) ([]byte, error)) ([]byte, error)
}
