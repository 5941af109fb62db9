package ratelimit

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ulule/limiter/v3"
)

// Result is the outcome of one check.
type Result struct {
	Limit     int64     // events allowed per period
	Remaining int64     // events left in the current period
	Reset     time.Time // when the current period ends
	Reached   bool      // true when this event was over the limit
}

// RetryIn is how long until the current period ends; never negative.
func (r Result) RetryIn() time.Duration { return max(time.Until(r.Reset), 0) }

// Limiter admits or refuses events per key at a fixed rate, with ulule's
// fixed-window counting: a key's window opens at its first event and lasts
// one period; every event in it, admitted or not, is counted. Limiters come
// from a Registry; they count in Redis while it is ready and in memory (per
// instance) while it is not.
type Limiter struct {
	reg  *Registry
	name string
	rate atomic.Pointer[limiter.Rate] // replaced by Registry.SetLimits
}

// Name is the limiter's namespace in Redis keys.
func (l *Limiter) Name() string { return l.name }

// Rate is the limiter's rate.
func (l *Limiter) Rate() limiter.Rate { return *l.rate.Load() }

func (l *Limiter) key(key string) string {
	if key == "" {
		return l.name
	}
	return l.name + ":" + key
}

// Allow counts one event for key and reports whether it is within the rate.
// On Redis it costs exactly one round trip. The error is non-nil only when
// ctx is done or Redis answers with an error that is not about reaching it;
// connection failures are answered from memory.
func (l *Limiter) Allow(ctx context.Context, key string) (Result, error) {
	c, reset, err := l.reg.get(ctx, l.key(key), *l.rate.Load())
	if err != nil {
		return Result{}, fmt.Errorf("ratelimit: %s: %w", l.name, err)
	}
	return Result{Limit: c.Limit, Remaining: c.Remaining, Reset: reset, Reached: c.Reached}, nil
}

// Wait blocks until an event for key is within the rate, or ctx is done.
// Each attempt counts as an event, one per window while over the limit.
func (l *Limiter) Wait(ctx context.Context, key string) (Result, error) {
	for {
		res, err := l.Allow(ctx, key)
		if err != nil || !res.Reached {
			return res, err
		}
		t := time.NewTimer(res.RetryIn())
		select {
		case <-ctx.Done():
			t.Stop()
			return res, fmt.Errorf("ratelimit: %s: %w", l.name, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// LimitedError is returned by a handler whose task is over its rate. The
// runtime does not count it as a failure and retries the task after RetryIn;
// see IsFailure and RetryDelayFunc.
type LimitedError struct {
	RetryIn time.Duration
	// Strict means the task must not run again before RetryIn has passed,
	// as with a server's Retry-After. The runtime then rounds the retry up
	// to asynq's whole-second resolution. A limiter's own window needs no
	// rounding: a task that comes back early is simply limited again.
	Strict bool
}

func (e *LimitedError) Error() string {
	return fmt.Sprintf("rate limited: retry in %s", e.RetryIn)
}
