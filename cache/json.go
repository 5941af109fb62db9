package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// GetJSON gets key from s and decodes it into a T. A missing key is
// ErrNotFound.
func GetJSON[T any](ctx context.Context, s Store, key string) (T, error) {
	var v T
	b, err := s.Get(ctx, key)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("cache: decode %q as %T: %w", key, v, err)
	}
	return v, nil
}

// SetJSON encodes v as JSON and stores it under key for ttl.
func SetJSON[T any](ctx context.Context, s Store, key string, v T, ttl time.Duration) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cache: encode %q: %w", key, err)
	}
	return s.Set(ctx, key, b, ttl)
}

// GetOrLoadJSON is GetOrLoad for a value stored as JSON: concurrent misses
// for key make one call of load, whose result is stored for ttl. A load error
// is returned as it is and nothing is stored.
func GetOrLoadJSON[T any](ctx context.Context, s Store, key string, ttl time.Duration, load func(ctx context.Context) (T, error)) (T, error) {
	var v T
	b, err := s.GetOrLoad(ctx, key, ttl, func(ctx context.Context) ([]byte, error) {
		lv, err := load(ctx)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(lv)
		if err != nil {
			return nil, fmt.Errorf("cache: encode %q: %w", key, err)
		}
		return b, nil
	})
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("cache: decode %q as %T: %w", key, v, err)
	}
	return v, nil
}
