package taskhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost/internal/metrics"
	"github.com/taskhost/taskhost/internal/outbox"
	"github.com/taskhost/taskhost/internal/tasklog"
	"github.com/taskhost/taskhost/ratelimit"
)

// PanicError is the error a recovered handler panic becomes. asynq retries
// the task like any other failure.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("handler panic: %v", e.Value) }

// taskObserver receives each task's start and outcome (metrics).
type taskObserver interface {
	TaskStarted()
	TaskFinished()
	ObserveTask(taskType, queue, outcome string, d time.Duration)
}

// recoverMiddleware turns a handler panic into a *PanicError and logs it with
// its stack. It is the outermost middleware.
func recoverMiddleware(log *slog.Logger) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) (err error) {
			defer func() {
				if v := recover(); v != nil {
					pe := &PanicError{Value: v, Stack: debug.Stack()}
					id, _ := asynq.GetTaskID(ctx)
					log.ErrorContext(ctx, "handler panic recovered", "task_id", id, "type", t.Type(),
						"panic", fmt.Sprint(v), "stack", string(pe.Stack))
					err = pe
				}
			}()
			return next.ProcessTask(ctx, t)
		})
	}
}

// outcome classifies a handler's result. panicked is true when the handler
// did not return (it is unwinding a panic).
func outcome(ctx context.Context, err error, panicked bool) string {
	var limited *ratelimit.LimitedError
	var pe *PanicError
	switch {
	case panicked || errors.As(err, &pe):
		return metrics.OutcomePanic
	case err == nil:
		return metrics.OutcomeSuccess
	case errors.As(err, &limited):
		return metrics.OutcomeRateLimited
	case errors.Is(err, asynq.SkipRetry):
		return metrics.OutcomeArchived
	}
	retried, ok1 := asynq.GetRetryCount(ctx)
	max, ok2 := asynq.GetMaxRetry(ctx)
	if ok1 && ok2 && retried >= max {
		return metrics.OutcomeArchived
	}
	return metrics.OutcomeFailure
}

// observeMiddleware reports each task's outcome and duration to obs, and
// logs its id, type, queue, retry count, duration and outcome, with the
// attributes its handler added (plugins.AnnotateTask): a failure at WARN, a
// panic at ERROR, a success or a rate-limited task at DEBUG only. asynq and
// River log nothing per successful task either; at info the line cost a
// quarter of the worker's CPU per task in a drain, most of it the write of
// the line (docs/benchmarks.md, issue 18). The metrics count every outcome.
// It sees panics as they unwind, before the recovery middleware outside it
// turns them into errors.
func observeMiddleware(log *slog.Logger, obs taskObserver) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) (err error) {
			start := time.Now()
			if obs != nil {
				obs.TaskStarted()
			}
			ctx, note := tasklog.With(ctx, t.Type())
			panicked := true
			defer func() {
				d := time.Since(start)
				out := outcome(ctx, err, panicked)
				queue, _ := asynq.GetQueueName(ctx)
				if obs != nil {
					obs.TaskFinished()
					obs.ObserveTask(t.Type(), queue, out, d)
				}
				level, msg := slog.LevelDebug, "task done"
				switch out {
				case metrics.OutcomeRateLimited:
					level, msg = slog.LevelDebug, "task rate limited"
				case metrics.OutcomePanic:
					level, msg = slog.LevelError, "task panicked"
				case metrics.OutcomeFailure, metrics.OutcomeArchived:
					level, msg = slog.LevelWarn, "task failed"
				}
				if !log.Enabled(ctx, level) {
					return
				}
				id, _ := asynq.GetTaskID(ctx)
				retried, _ := asynq.GetRetryCount(ctx)
				attrs := []slog.Attr{slog.String("task_id", id), slog.String("type", t.Type()),
					slog.String("queue", queue), slog.Int("retry", retried),
					slog.Duration("duration", d), slog.String("outcome", out)}
				attrs = append(attrs, note.Attrs()...) // plugins.AnnotateTask
				if err != nil && out != metrics.OutcomePanic {
					attrs = append(attrs, slog.String("error", err.Error()))
				}
				log.LogAttrs(ctx, level, msg, attrs...)
			}()
			err = next.ProcessTask(ctx, t)
			panicked = false
			return err
		})
	}
}

// asynqDefaultTimeout is the timeout asynq v0.26 gives a task enqueued with
// neither Timeout nor Deadline (processor.go, defaultTimeout).
const asynqDefaultTimeout = 30 * time.Minute

// timeoutMiddleware makes d the default task timeout: a task whose deadline
// is asynq's own default (it was enqueued with no Timeout or Deadline) gets d
// instead. A task's explicit Timeout or Deadline is left as it is. Only a d
// shorter than asynq's default can apply: asynq fails a task at its own deadline.
func timeoutMiddleware(d time.Duration) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			if d <= 0 || d >= asynqDefaultTimeout {
				return next.ProcessTask(ctx, t)
			}
			if dl, ok := ctx.Deadline(); ok {
				left := time.Until(dl)
				if left > asynqDefaultTimeout-5*time.Second && left <= asynqDefaultTimeout {
					ctx, cancel := context.WithTimeout(ctx, d)
					defer cancel()
					return next.ProcessTask(ctx, t)
				}
			}
			return next.ProcessTask(ctx, t)
		})
	}
}

// retryAtSecondMiddleware rounds the RetryIn of a strict
// *ratelimit.LimitedError (a server's Retry-After) up to the next whole
// second of the wall clock.
// asynq stores a retry's due time in Unix seconds, truncated (rdb.Retry,
// processAt.Unix()), so a task told to wait 1 s could run again after 0.1 s;
// rounded up, it never runs before its RetryIn (a 429's Retry-After, a limit
// window's reset). Other errors pass through unchanged.
func retryAtSecondMiddleware(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		err := next.ProcessTask(ctx, t)
		var limited *ratelimit.LimitedError
		if err == nil || !errors.As(err, &limited) || !limited.Strict {
			return err
		}
		now := time.Now()
		due := now.Add(max(limited.RetryIn, 0))
		if rounded := due.Truncate(time.Second); !rounded.Equal(due) {
			due = rounded.Add(time.Second)
		}
		return &roundedLimitError{err: err, limited: &ratelimit.LimitedError{RetryIn: due.Sub(now), Strict: true}}
	})
}

// roundedLimitError is a handler's error whose *ratelimit.LimitedError, as
// errors.As finds it, has its RetryIn rounded up. It keeps the handler's
// message and chain, and does not modify the handler's error value.
type roundedLimitError struct {
	err     error
	limited *ratelimit.LimitedError
}

func (e *roundedLimitError) Error() string { return e.err.Error() }
func (e *roundedLimitError) Unwrap() error { return e.err }

// As answers for *ratelimit.LimitedError with the rounded copy.
func (e *roundedLimitError) As(target any) bool {
	if p, ok := target.(**ratelimit.LimitedError); ok {
		*p = e.limited
		return true
	}
	return false
}

// payloadMiddleware archives, with the reason, a task whose payload is
// larger than max bytes: one that another client enqueued past taskhost's
// bound (a larger task message never reaches a handler; the queue guard
// archives it unread). The handler does not run.
func payloadMiddleware(max int) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			if err := outbox.CheckPayload(t, max); err != nil {
				return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
			}
			return next.ProcessTask(ctx, t)
		})
	}
}
