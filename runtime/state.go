package runtime

import "github.com/taskhost/taskhost/internal/redisconn"

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
	}
}
