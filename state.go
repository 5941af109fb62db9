package taskhost

import (
	"context"
	"time"

	"github.com/taskhost/taskhost/internal/redisconn"
)

// onState follows the connection monitor: the outbox drains on ready, and
// the metrics record the state. It runs on the monitor's subscriber
// goroutine. (The cache and the limiter follow the monitor on their own
// subscriptions, through watchReady.)
func (r *Runtime) onState(_, to redisconn.State) {
	r.metrics.SetState(to.String())
	if to == redisconn.Ready {
		r.client.Kick()
		r.publishQueues()
	}
}

// watchReady is the Watch of the cache and the limiter: it tells them, on
// a subscription of their own, whether the monitor says Redis is ready. They
// are the only switch of their fallbacks. Closed is not passed on: at
// shutdown they keep their backend until they close.
func (r *Runtime) watchReady(setReady func(ready bool)) (stop func()) {
	return r.monitor.Subscribe(func(_, to redisconn.State) {
		if to != redisconn.Closed {
			setReady(to == redisconn.Ready)
		}
	})
}

// allQueuesKey is asynq v0.26.0's set of queue names (base.AllQueues), which
// its Inspector, asynqmon and the health report list queues from.
const allQueuesKey = "asynq:queues"

// publishQueues adds the worker's queues to asynq's set of queues. asynq's
// clients add a queue to it only on their first enqueue to it in a process,
// so after Redis came back empty the Inspector would not see a queue, and
// the health report and /ui would miss it, until another process enqueued.
// It is one SADD per ready transition.
func (r *Runtime) publishQueues() {
	names := make([]any, 0, len(r.cfg.Worker.Queues))
	for q := range r.cfg.Worker.Queues {
		names = append(names, q)
	}
	if len(names) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := r.qrdb.SAdd(ctx, allQueuesKey, names...).Err(); err != nil {
		r.log.Debug("cannot register the worker's queues with asynq", "component", "queue", "error", err)
	}
}
