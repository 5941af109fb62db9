package connerr

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// Down reports whether err, from a Redis call, means that Redis cannot serve
// right now, as opposed to an answer about this call (redis.Nil, WRONGTYPE,
// a script error, OOM) or the caller giving up. It is true for:
//
//   - Redis not reached or not answering in time: any net.Error (dial
//     failures, refused or reset connections, i/o timeouts, and so
//     context.DeadlineExceeded, which is a net.Error timeout), io.EOF,
//     io.ErrUnexpectedEOF, ECONNREFUSED, ECONNRESET, EPIPE, ETIMEDOUT;
//   - no connection to send it on: redis.ErrPoolTimeout,
//     redis.ErrPoolExhausted, and redis.ErrClosed (the client is closed, so
//     no call through it reaches Redis);
//   - a server that is up but cannot serve for now, the states of a restart
//     or a failover: LOADING, READONLY (the node is a replica now),
//     MASTERDOWN, CLUSTERDOWN, TRYAGAIN, and "max number of clients
//     reached";
//   - the same causes flattened into text, as asynq does with the errors of
//     its Lua scripts ("redis eval error: dial tcp ...: connection refused").
//
// It is false for nil, redis.Nil, context.Canceled (the caller gave up, which
// says nothing about Redis), any other server reply, and NOAUTH or WRONGPASS:
// a credential that Redis refuses is a configuration problem, not an outage,
// and retrying the call or serving it from memory would hide it. (The
// monitor's probe fails on it too, so the connection is not reported ready.)
//
// Callers that hold the call's context must first rule out their own
// deadline: a call whose ctx ended failed because of ctx, whatever Redis
// did. See DownFor.
func Down(err error) bool {
	if err == nil || err == redis.Nil || errors.Is(err, context.Canceled) {
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
	if redis.IsAuthError(err) {
		return false
	}
	if redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsMasterDownError(err) ||
		redis.IsClusterDownError(err) || redis.IsTryAgainError(err) || redis.IsMaxClientsError(err) {
		return true
	}
	return flattened(err.Error())
}

// TimedOut reports whether err is a reply that did not come in time (a
// network timeout): unlike a refused connection, the command may have run,
// and a caller that must not lose its effect asks Redis what happened.
func TimedOut(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// DownFor is Down for a call made with ctx: false once ctx has ended, since
// the call then failed because of the caller's own deadline or cancellation.
func DownFor(ctx context.Context, err error) bool {
	return ctx.Err() == nil && Down(err)
}

// markers are the texts of the causes Down accepts, for errors that reached
// the caller as text only. Server replies start with their code; asynq
// quotes them after "redis eval error: ".
var markers = []string{
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
	"redis: client is closed",
	"context deadline exceeded",
	"unexpected EOF",
	": EOF",
	"LOADING ",
	"READONLY ",
	"MASTERDOWN ",
	"CLUSTERDOWN ",
	"TRYAGAIN ",
	"max number of clients reached",
}

func flattened(msg string) bool {
	if msg == "EOF" {
		return true
	}
	if strings.Contains(msg, "NOAUTH ") || strings.Contains(msg, "WRONGPASS ") {
		return false
	}
	for _, m := range markers {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}
