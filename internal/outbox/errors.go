package outbox

import (
	"context"
	"errors"

	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost/internal/connerr"
)

// ErrOutboxFull is returned, wrapped with the current depth and the bounds,
// when holding a task would exceed Options.MaxTasks or Options.MaxBytes.
// The task was not accepted; the tasks already held are untouched.
var ErrOutboxFull = errors.New("outbox: full")

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("outbox: client is closed")

// delivered reports whether err from an enqueue means Redis already has the
// task: its task ID exists, or its uniqueness lock is held.
func delivered(err error) bool {
	return errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask)
}

// isConnError reports whether err, returned by an enqueue made with ctx,
// means Redis could not take the task for now (connerr.DownFor), as opposed
// to a refusal of this task or the caller's own context ending.
func isConnError(ctx context.Context, err error) bool {
	return !delivered(err) && connerr.DownFor(ctx, err)
}

// errNotReady stops a drain when Redis stops being ready.
var errNotReady = errors.New("outbox: redis is not ready")
