package outbox

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
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

// connMarkers are substrings of connection-type failures. asynq flattens the
// errors of its Lua scripts into strings ("redis eval error: ..."), so the
// typed checks in isConnError do not see them; these catch them by text.
var connMarkers = []string{
	"connection refused",
	"connection reset",
	"broken pipe",
	"i/o timeout",
	"no route to host",
	"network is unreachable",
	"use of closed network connection",
	"dial tcp",
	"connection pool timeout",
	"connection pool exhausted",
	"client is closed",
	"context deadline exceeded",
	"unexpected EOF",
	": EOF",
	"LOADING ",
	"READONLY ",
	"MASTERDOWN ",
	"CLUSTERDOWN ",
	"TRYAGAIN ",
}

// isConnError reports whether err, returned by an enqueue made with ctx,
// means Redis could not be reached or could not take writes for now, as
// opposed to a refusal of this task. A failure caused by the caller's own
// context is not a connection error.
func isConnError(ctx context.Context, err error) bool {
	if err == nil || delivered(err) || ctx.Err() != nil {
		return false
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ETIMEDOUT),
		errors.Is(err, redis.ErrPoolTimeout),
		errors.Is(err, redis.ErrPoolExhausted),
		errors.Is(err, redis.ErrClosed),
		errors.Is(err, context.DeadlineExceeded):
		return true
	}
	msg := err.Error()
	if msg == "EOF" {
		return true
	}
	for _, m := range connMarkers {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// errNotReady stops a drain when Redis stops being ready.
var errNotReady = errors.New("outbox: redis is not ready")
