package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/hibiken/asynq"
)

// TaskMiddleware limits task types to rates, from ratelimit.tasks:
// {"<task type>": "<rate>"}. A task over its type's rate returns
// *LimitedError{RetryIn: time until the window resets}, which the server must
// treat as "not a failure": set asynq.Config.IsFailure to IsFailure and
// RetryDelayFunc to RetryDelay (or RetryDelayFunc(yours)). The task then goes
// back to the retry set without consuming a retry.
//
// asynq v0.26.0 archives a task that errs when Retried >= MaxRetry, before it
// asks IsFailure. So on a task's last allowed attempt (MaxRetry(0), or retries
// used up by real failures) the middleware does not return LimitedError: it
// waits in the handler for the window to reset, within the task's deadline.
// It also waits in the handler, for less than a second, when the window ends
// within the current second (see admit).
//
// asynq moves retries back to the queue from its forwarder, every
// Config.DelayedTaskCheckInterval (5 s by default), and stores the retry time
// in whole seconds, so set that interval well under a second where task
// rates are per second.
//
// Task types are counted under the limiter name "task:<type>". A bad rate is
// an error naming its key, ratelimit.tasks.<type>.
func (r *Registry) TaskMiddleware(rates map[string]string) (asynq.MiddlewareFunc, error) {
	limiters := make(map[string]*Limiter, len(rates))
	var errs []error
	for _, typ := range slices.Sorted(maps.Keys(rates)) {
		l, err := r.newLimiter("task:"+typ, rates[typ], "ratelimit.tasks."+typ)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		limiters[typ] = l
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			l, ok := limiters[t.Type()]
			if !ok {
				return next.ProcessTask(ctx, t)
			}
			if err := admit(ctx, l); err != nil {
				return err
			}
			return next.ProcessTask(ctx, t)
		})
	}, nil
}

// admit returns nil once the task may run, or a *LimitedError to retry it.
//
// It waits in the handler instead of erring in two cases: on the task's last
// attempt, which asynq would archive; and when the window ends within the
// current wall-clock second. asynq keeps retry times in whole seconds, so
// such a retry would be due at once and come straight back, over and over,
// once per forwarder tick, until the window ended. That wait is under 1 s.
func admit(ctx context.Context, l *Limiter) error {
	last := lastAttempt(ctx)
	for {
		res, err := l.Allow(ctx, "")
		if err != nil {
			return err
		}
		if !res.Reached {
			return nil
		}
		now := time.Now()
		wait := res.RetryIn()
		if !last && now.Add(wait).Unix() > now.Unix() {
			return &LimitedError{RetryIn: wait}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("ratelimit: %s: %w", l.name, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// lastAttempt reports whether asynq would archive this task on any error.
func lastAttempt(ctx context.Context) bool {
	n, ok1 := asynq.GetRetryCount(ctx)
	maxRetry, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && n >= maxRetry
}

// IsFailure is for asynq.Config.IsFailure: a *LimitedError anywhere in err's
// chain is not a failure, so asynq retries the task without counting it
// against its retries (it leaves TaskInfo.Retried as it was).
func IsFailure(err error) bool {
	var limited *LimitedError
	return !errors.As(err, &limited)
}

// RetryDelay is for asynq.Config.RetryDelayFunc: RetryIn for a
// *LimitedError, asynq.DefaultRetryDelayFunc otherwise.
func RetryDelay(n int, err error, t *asynq.Task) time.Duration {
	return retryDelay(asynq.DefaultRetryDelayFunc, n, err, t)
}

// RetryDelayFunc returns a RetryDelayFunc that waits RetryIn for a
// *LimitedError and asks fallback (asynq.DefaultRetryDelayFunc when nil)
// otherwise.
func RetryDelayFunc(fallback asynq.RetryDelayFunc) asynq.RetryDelayFunc {
	if fallback == nil {
		fallback = asynq.DefaultRetryDelayFunc
	}
	return func(n int, err error, t *asynq.Task) time.Duration {
		return retryDelay(fallback, n, err, t)
	}
}

func retryDelay(fallback asynq.RetryDelayFunc, n int, err error, t *asynq.Task) time.Duration {
	var limited *LimitedError
	if errors.As(err, &limited) {
		return max(limited.RetryIn, 0)
	}
	return fallback(n, err, t)
}
