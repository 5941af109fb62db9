package ratelimit

import "context"

// Result is the outcome of one check.
type Result struct{}

// Limiter admits or refuses events per key at a fixed rate.
type Limiter struct{}

// Allow counts one event for key and reports whether it is within the rate.
func (l *Limiter) Allow(ctx context.Context, key string) (Result, error) { return Result{}, nil }
