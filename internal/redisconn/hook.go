package redisconn

import (
	"context"
	"net"

	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/connerr"
)

// nudgeHook asks the monitor for a probe when any command, pipeline or dial
// fails because Redis cannot serve (connerr.Down), so an outage is noticed on the first failed
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
		case connerr.Down(err):
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
	case connerr.Down(err):
		h.m.nudge()
	}
}

func (h nudgeHook) success() {
	if h.m.state.Load() != int32(Ready) {
		h.m.nudgeRecovered()
	}
}

// Hook returns the monitor's nudge hook, for another client to the same
// server (the runtime's queue pool): its failures and successes then reach
// the monitor as quickly as the monitored client's do.
func (m *Monitor) Hook() redis.Hook { return nudgeHook{m} }
