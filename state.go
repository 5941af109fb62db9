package taskhost

import (
	"context"
	"time"

	"github.com/taskhost/taskhost/internal/redisconn"
)

// onState follows the connection monitor: the cache and limiter switch
// between Redis and memory, the outbox drains on ready, and the metrics
// record the state. It runs on the monitor's subscriber goroutine.
func (r *Runtime) onState(_, to redisconn.State) {
	ready := to == redisconn.Ready
	r.cache.SetRedisReady(ready)
	r.limits.SetRedisReady(ready)
	r.metrics.SetState(to.String())
	if ready {
		r.client.Kick()
		r.publishQueues()
	}
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
