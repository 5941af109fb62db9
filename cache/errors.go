package cache

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors for bad input. They are wrapped with details (the key, the size and
// the limit) and nothing is written when one is returned; test for them with
// errors.Is.
var (
	// ErrInvalidKey is returned for an empty key.
	ErrInvalidKey = errors.New("cache: invalid key")
	// ErrValueTooLarge is returned for a value longer than Options.MaxValueBytes.
	ErrValueTooLarge = errors.New("cache: value too large")
	// ErrInvalidTTL is returned for a negative TTL.
	ErrInvalidTTL = errors.New("cache: invalid ttl")
	// ErrInvalidNamespace is returned by ValidateNamespace for an empty
	// namespace or one that contains ':'.
	ErrInvalidNamespace = errors.New("cache: invalid namespace")
)

// ValidateNamespace reports whether ns can name a namespace: it must be
// non-empty and must not contain ':', so that no two namespaces share keys.
func ValidateNamespace(ns string) error {
	if ns == "" {
		return fmt.Errorf("%w: empty", ErrInvalidNamespace)
	}
	if strings.Contains(ns, ":") {
		return fmt.Errorf("%w: %q contains ':'", ErrInvalidNamespace, ns)
	}
	return nil
}

func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	return nil
}

func checkTTL(key string, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("%w: negative ttl %s for key %q", ErrInvalidTTL, ttl, key)
	}
	return nil
}

func checkSize(key string, n, limit int) error {
	if n > limit {
		return fmt.Errorf("%w: %d bytes for key %q exceed the limit of %d bytes (cache.max_value_bytes)",
			ErrValueTooLarge, n, key, limit)
	}
	return nil
}
