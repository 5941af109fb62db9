package redisconn

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// nudgeHook asks the monitor for a probe when any command, pipeline or dial
// fails with a network error, so an outage is noticed on the first failed
// call rather than at the next periodic ping; and, while the monitor is not
// ready, when one succeeds, so a recovery is noticed before the next backoff
// step. On success it costs one atomic load.
type nudgeHook struct{ m *Monitor }

var _ redis.Hook = nudgeHook{}

func (h nudgeHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cn, err := next(ctx, network, addr)
		switch {
		case err == nil:
			h.success()
		case !errors.Is(err, context.Canceled):
			h.m.nudge()
		}
		return cn, err
	}
}

func (h nudgeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.after(err)
		return err
	}
}

func (h nudgeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.after(err)
		return err
	}
}

func (h nudgeHook) after(err error) {
	switch {
	case err == nil || err == redis.Nil:
		h.success()
	case IsNetworkError(err):
		h.m.nudge()
	}
}

func (h nudgeHook) success() {
	if h.m.state.Load() != int32(Ready) {
		h.m.nudgeRecovered()
	}
}

// IsNetworkError reports whether err means Redis could not be reached or did
// not answer in time (as opposed to a reply such as redis.Nil or WRONGTYPE):
// a net.Error (timeouts included, and so a context deadline), EOF, a refused
// or reset connection, or a pool timeout. A cancelled context and a closed
// client are not.
func IsNetworkError(err error) bool {
	if err == nil || err == redis.Nil || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, redis.ErrPoolTimeout) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// Hook returns the monitor's nudge hook, for another client to the same
// server (the runtime's queue pool): its failures and successes then reach
// the monitor as quickly as the monitored client's do.
func (m *Monitor) Hook() redis.Hook { return nudgeHook{m} }
