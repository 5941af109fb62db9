package runtime

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/config"
	"github.com/taskhost/taskhost/ratelimit"
)

// This file is the one place where asynq is wired: its server, scheduler,
// inspector and mux, all on the queue client. Later work that multiplies
// servers or hooks the client changes this file only.

// queue is asynq's side of the worker.
type queue struct {
	server    *asynq.Server
	scheduler *asynq.Scheduler
	inspector *asynq.Inspector
	mux       *asynq.ServeMux
}

// newQueue builds asynq's server, scheduler and inspector on rdb. None of
// them closes rdb: asynq's …FromRedisClient constructors leave that to the
// runtime, which closes it last.
func newQueue(rdb redis.UniversalClient, cfg config.Config, log *slog.Logger) *queue {
	alog := asynqLogger{l: log.With("component", "asynq")}
	level := asynqLevel(cfg.Log)
	w := cfg.Worker
	q := &queue{mux: asynq.NewServeMux()}
	q.server = asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:     w.Concurrency,
		Queues:          w.Queues,
		StrictPriority:  w.StrictPriority,
		ShutdownTimeout: w.ShutdownTimeout,
		IsFailure:       ratelimit.IsFailure,
		RetryDelayFunc:  ratelimit.RetryDelayFunc(retryDelay(w.RetryBaseDelay, w.RetryMaxDelay)),
		// Retries and scheduled tasks move to their queue within a second
		// (asynq's default is 5 s), so a rate-limited task resumes when its
		// window resets. It costs one command per queue per second.
		DelayedTaskCheckInterval: time.Second,
		Logger:                   alog,
		LogLevel:                 level,
		// The state monitor watches Redis; asynq's own check would only log.
		HealthCheckFunc: func(error) {},
	})
	q.scheduler = asynq.NewSchedulerFromRedisClient(rdb, &asynq.SchedulerOpts{
		Logger:   alog,
		LogLevel: level,
		Location: time.UTC,
		PostEnqueueFunc: func(info *asynq.TaskInfo, err error) {
			if err != nil && !errors.Is(err, asynq.ErrDuplicateTask) {
				log.Warn("scheduled enqueue failed", "component", "scheduler", "error", err)
			}
		},
	})
	q.inspector = asynq.NewInspectorFromRedisClient(rdb)
	return q
}

// retryDelay backs off exponentially from base to max with jitter.
// (ratelimit.RetryDelayFunc puts a rate-limited task back when its window
// resets instead.)
func retryDelay(base, max time.Duration) asynq.RetryDelayFunc {
	return func(n int, _ error, _ *asynq.Task) time.Duration {
		d := base
		for i := 0; i < n && d < max; i++ {
			d *= 2
		}
		if d > max {
			d = max
		}
		// Full jitter over the upper half keeps retries of a burst apart.
		return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	}
}

// start starts the server with handler, then the scheduler.
func (q *queue) start(handler asynq.Handler) error {
	if err := q.server.Start(handler); err != nil {
		return err
	}
	if err := q.scheduler.Start(); err != nil {
		q.server.Shutdown()
		return err
	}
	return nil
}

// stopFetching stops taking new tasks; in-flight tasks continue (SIGTSTP).
func (q *queue) stopFetching() { q.server.Stop() }

// shutdown stops the scheduler, then the server, which waits up to the
// shutdown timeout for in-flight tasks and requeues the rest.
func (q *queue) shutdown() {
	q.scheduler.Shutdown()
	q.server.Shutdown()
}
