package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// backend is what the Redis, memory and fallback stores implement. Input is
// already validated; get returns the bare ErrNotFound for a miss.
type backend interface {
	get(ctx context.Context, ns, key string) ([]byte, error)
	set(ctx context.Context, ns, key string, value []byte, ttl time.Duration) error
	del(ctx context.Context, ns, key string) error
}

// Stats counts Get outcomes (GetOrLoad counts as a Get) for metrics.
type Stats struct {
	Hits   uint64 // Gets that found a value
	Misses uint64 // Gets that found none
	// RedisErrors counts calls that the fallback store routed to Redis while
	// it was marked ready, that failed with a connection-type error and that
	// were served from memory instead. Always zero for NewRedis and NewMemory.
	RedisErrors uint64
}

// core is shared by the namespaces of one root store: it validates input,
// counts hits and misses and runs GetOrLoad's single flights.
type core struct {
	b        backend
	maxValue int
	flights  singleflight.Group
	hits     atomic.Uint64
	misses   atomic.Uint64
}

func newCore(b backend, o Options) *core {
	return &core{b: b, maxValue: o.MaxValueBytes}
}

func (c *core) namespace(ns string) Store {
	if err := ValidateNamespace(ns); err != nil {
		panic(err.Error())
	}
	return &nsStore{c: c, ns: ns}
}

func (c *core) stats() Stats {
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load()}
}

// nsStore is one namespace of a root store.
type nsStore struct {
	c  *core
	ns string
}

func (s *nsStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	v, err := s.c.b.get(ctx, s.ns, key)
	s.count(err)
	return v, err
}

func (s *nsStore) count(err error) {
	switch {
	case err == nil:
		s.c.hits.Add(1)
	case errors.Is(err, ErrNotFound):
		s.c.misses.Add(1)
	}
}

func (s *nsStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := s.checkSet(key, value, ttl); err != nil {
		return err
	}
	return s.c.b.set(ctx, s.ns, key, value, ttl)
}

func (s *nsStore) checkSet(key string, value []byte, ttl time.Duration) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := checkTTL(key, ttl); err != nil {
		return err
	}
	return checkSize(key, len(value), s.c.maxValue)
}

func (s *nsStore) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return s.c.b.del(ctx, s.ns, key)
}

// GetOrLoad runs load with the context of the first caller that missed;
// the callers that join it share its result. A value from load that is too
// large to store is returned as ErrValueTooLarge, and a load error is returned
// as it is; in both cases nothing is stored.
func (s *nsStore) GetOrLoad(ctx context.Context, key string, ttl time.Duration, load func(ctx context.Context) ([]byte, error)) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := checkTTL(key, ttl); err != nil {
		return nil, err
	}
	if load == nil {
		return nil, errors.New("cache: GetOrLoad: nil load function")
	}
	v, err := s.Get(ctx, key)
	if !errors.Is(err, ErrNotFound) {
		return v, err
	}
	res, err, shared := s.c.flights.Do(s.ns+":"+key, func() (any, error) {
		// A flight that ended just before this one began may have stored it.
		if v, err := s.c.b.get(ctx, s.ns, key); !errors.Is(err, ErrNotFound) {
			return v, err
		}
		v, err := load(ctx)
		if err != nil {
			return nil, err
		}
		if err := checkSize(key, len(v), s.c.maxValue); err != nil {
			return nil, err
		}
		if err := s.c.b.set(ctx, s.ns, key, v, ttl); err != nil {
			return nil, fmt.Errorf("cache: store loaded value: %w", err)
		}
		return v, nil
	})
	if err != nil {
		return nil, err
	}
	v = res.([]byte)
	if shared {
		v = bytes.Clone(v) // each caller may modify its own copy
	}
	return v, nil
}
