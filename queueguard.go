package taskhost

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/quarantine"
)

// The queue guard (internal/quarantine) keeps poison tasks from stopping a
// queue: asynq's servers run on its clients, whose dequeue and lease
// recovery set aside what asynq cannot decode and archive what is larger
// than worker.max_payload_bytes allows, and its scan looks at every task of
// the worker's queues, a bounded step a minute on one worker of the fleet.

// startScan runs the guard's periodic scan over queues until stopScan.
func (q *queue) startScan(rdb redis.UniversalClient, queues []string, ready func() bool) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.guard.Run(ctx, rdb, queues, quarantine.ScanInterval, ready)
	}()
	q.stopScan = func() { cancel(); <-done }
}

// quarantineWarnings is the health report's warning for quarantined tasks.
func (r *Runtime) quarantineWarnings(context.Context) ([]string, error) {
	return r.queue.guard.Warnings(), nil
}

// registerQuarantine exports the guard's counts as metrics.
func (r *Runtime) registerQuarantine() error {
	return r.metrics.RegisterQuarantine(r.queue.guard.Quarantined, r.queue.guard.Totals)
}

// queueTimeouts is the queue pool's config: redis.read_timeout and
// redis.write_timeout plus the time the largest allowed task message needs
// at quarantine.MinTransferRate, so that asynq's scripts, which carry whole
// messages, cannot time out on the largest task taskhost lets through
// (docs/reliability.md, "Bad input").
func queueTimeouts(cfg Config) RedisConfig {
	r := cfg.Redis
	add := quarantine.QueueAllowance(cfg.Worker.MaxPayloadBytes)
	r.ReadTimeout += add
	r.WriteTimeout += add
	return r
}
