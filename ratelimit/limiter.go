package ratelimit

import (
	"context"
	"fmt"
	"time"
)

// Result is the outcome of one check.
type Result struct {
	Limit     int64     // events allowed per period
	Remaining int64     // events left in the current period
	Reset     time.Time // when the current period ends
	Reached   bool      // true when this event was over the limit
}

// Limiter admits or refuses events per key at a fixed rate.
// (Contract stub: the ratelimit engineer replaces the body.)
type Limiter struct{}

// Allow counts one event for key and reports whether it is within the rate.
func (l *Limiter) Allow(ctx context.Context, key string) (Result, error) { return Result{}, nil }

// LimitedError is returned by a handler whose task is over its rate. The
// runtime does not count it as a failure and retries the task after RetryIn.
type LimitedError struct {
	RetryIn time.Duration
}

func (e *LimitedError) Error() string {
	return fmt.Sprintf("rate limited: retry in %s", e.RetryIn)
}
