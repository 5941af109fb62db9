package taskhost

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/quarantine"
	"github.com/taskhost/taskhost/internal/schedule"
	"github.com/taskhost/taskhost/internal/tracing"
	"github.com/taskhost/taskhost/ratelimit"
)

// This file is the one place where asynq is wired: its servers, inspector
// and mux, and taskhost's scheduler (schedule.go) with its enqueue client,
// all on the queue client. Later work that multiplies servers or hooks the
// client changes this file only.

// queue is asynq's side of the worker.
type queue struct {
	// servers are the fetchers (fetchers.go): asynq servers sharing the
	// concurrency, the mux and the middleware.
	servers []*asynq.Server
	// scheduler enqueues periodic tasks once per tick across the fleet
	// (internal/schedule); asynq's own Scheduler is not used.
	scheduler *schedule.Scheduler
	client    *asynq.Client // the scheduler's
	// registry lists the scheduler's entries for asynq's tools
	// (cronregistry.go); it runs once there are entries.
	registry  *cronRegistry
	inspector *asynq.Inspector
	mux       *asynq.ServeMux
	// release ends a subscriber's wait for Redis (see queueClient); asynq's
	// server shutdown waits for the subscriber goroutine.
	release func()
	// hub hands out wake-ups to idle fetchers (wakeup.go); nil with
	// worker.wakeup: off. halt ends their waits when fetching stops.
	hub      *wakeHub
	halt     chan struct{}
	haltOnce sync.Once
	// guard sets poison tasks aside (queueguard.go); its scan runs from
	// start to shutdown.
	guard    *quarantine.Guard
	scan     func()
	stopScan func()
	fetchers []*fetchClient // one per server
	// order holds the weights of a reload; nil until one changes them
	// (queueorder.go).
	order atomic.Pointer[queueOrder]
	// batch answers the fetchers' dequeues with batches (batchdequeue.go);
	// nil with worker.dequeue_batch 1.
	batch *batcher
	// acks sends the fetchers' acknowledgements of successes (acks.go).
	acks *acker
	// logLevel is log.level for asynq's own lines (asynqLogger.min); a
	// reload sets it.
	logLevel slog.LevelVar
}

// setWeights makes the fetchers draw their rounds from weights and strict
// from their next round on. weights has the queues the servers started
// with: Reload refuses another set.
func (q *queue) setWeights(weights map[string]int, strict bool) {
	q.order.Store(newQueueOrder(weights, strict))
}

// newQueue builds asynq's servers and inspector, and the scheduler, on rdb.
// None of them closes rdb: asynq's …FromRedisClient constructors leave that to the
// runtime, which closes it last.
func newQueue(rdb redis.UniversalClient, cfg Config, log *slog.Logger, tr *tracing.Tracer) *queue {
	w := cfg.Worker
	q := &queue{mux: asynq.NewServeMux(), release: func() {}, halt: make(chan struct{}), stopScan: func() {},
		guard: quarantine.New(quarantine.Options{MaxPayloadBytes: cfg.Worker.MaxPayloadBytes, Logger: log})}
	q.logLevel.Set(logLevel(cfg.Log))
	alog := asynqLogger{l: log.With("component", "asynq"), min: &q.logLevel}
	raw, ready, await := rdb, func() bool { return true }, func(context.Context) bool { return true }
	if qc, ok := rdb.(*queueClient); ok {
		q.release = qc.release
		raw, ready, await = qc.UniversalClient, qc.ready, qc.waitReady
	}
	base := asynq.Config{
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
		// asynqLogger filters at the reloadable log.level, before formatting;
		// asynq's own level is fixed at start.
		LogLevel: asynq.DebugLevel,
		// The state monitor watches Redis; asynq's own check would only log.
		HealthCheckFunc: func(error) {},
	}
	queues := make([]string, 0, len(w.Queues))
	for name := range w.Queues {
		queues = append(queues, name)
	}
	if wakeup := strings.ToLower(w.Wakeup); wakeup != WakeupOff {
		q.hub = newWakeHub(wakeHubConfig(cfg, raw, ready, await, queues, log.With("component", "queue")))
	}
	var pipe redis.Cmdable
	if w.AutoPipeline && len(concurrencyShares(w.Concurrency, w.Fetchers)) > 1 {
		// With one fetcher, batches of task-done scripts delay its dequeues
		// (measured: -20% drain throughput); several fetchers hide that.
		pipe = autoPipeliner(raw, log.With("component", "queue"))
	}
	if w.DequeueBatch > 1 {
		q.batch = newBatcher(rdb, q.guard, w.DequeueBatch, w.Concurrency, log.With("component", "queue"))
		if h := q.hub; h != nil {
			q.batch.wake = func() {
				if h.waiting.Load() > 0 {
					h.wakeAll()
				}
			}
		}
	}
	var completer redis.Cmdable = rdb // without the guard's wrapper: see fetchClient.completer
	if pipe != nil {
		completer = pipe
	}
	q.acks = newAcker(completer, w.Concurrency, syncBound(cfg.Redis), await, log.With("component", "queue"))
	for i, c := range serverConfigs(base, w.Fetchers, q.hub != nil) {
		fc := newFetchClient(q.guard.Client(rdb), q.hub, q.guard.Pipe(pipe), q.halt, queues, notifyWait, log.With("component", "queue"))
		fc.syncBound, fc.await = syncBound(cfg.Redis), await
		fc.completer, fc.acks = completer, q.acks
		fc.rounds.order = &q.order
		if q.batch != nil {
			fc.batch, fc.receipt = q.batch, q.batch.owner+"-"+strconv.Itoa(i)
		}
		if i > 0 {
			fc.idle = notifyWaitExtra
			fc.standby = standbyWhileDown(ready, await)
			fc.notRecoverer = true // one recoverer per process: see recoverer.go
		}
		q.fetchers = append(q.fetchers, fc)
		q.servers = append(q.servers, asynq.NewServerFromRedisClient(fc, c))
	}
	q.client = asynq.NewClientFromRedisClient(rdb)
	enqueue := recordEnqueues(rdb, q.client.EnqueueContext) // cronregistry.go
	if tr != nil {                                          // tracing.go: a span per tick
		enqueue = traceScheduled(tr, enqueue)
	}
	q.scheduler = schedule.New(schedule.Options{
		Enqueue: enqueue,
		Wait:    await,
		Logger:  log,
	})
	q.registry = newCronRegistry(rdb, q.scheduler.Status, log.With("component", "scheduler"))
	q.inspector = asynq.NewInspectorFromRedisClient(rdb)
	q.scan = func() { q.startScan(rdb, queues, ready) }
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

// start starts the wake-ups, the servers with handler, then the scheduler.
// A failure shuts down what started.
func (q *queue) start(handler asynq.Handler) error {
	if q.hub != nil {
		q.hub.start()
	}
	if q.batch != nil {
		handler = q.batch.track(handler)
	}
	q.acks.start()
	for i, s := range q.servers {
		if err := s.Start(handler); err != nil {
			q.shutdownServers(q.servers[:i])
			return err
		}
	}
	q.scheduler.Start()
	q.schedulesChanged()
	q.scan()
	return nil
}

// schedulesChanged starts the registry once the scheduler has entries: at
// start, or when a reload adds the first.
func (q *queue) schedulesChanged() {
	if q.scheduler.Len() > 0 {
		q.registry.start()
	}
}

// stopFetching stops taking new tasks on every server; in-flight tasks
// continue (SIGTSTP).
func (q *queue) stopFetching() {
	q.haltOnce.Do(func() { close(q.halt) })
	parallel(q.servers, (*asynq.Server).Stop)
	if q.batch != nil {
		q.batch.close()
	}
}

// shutdown stops the scheduler, then the servers: fetching first on all,
// then each waits up to the shutdown timeout for its in-flight tasks and
// requeues the rest, all at once. A tick the scheduler was retrying is left
// to the other workers.
func (q *queue) shutdown() {
	q.release()
	q.stopScan()
	q.scheduler.Stop()
	q.registry.shutdown()
	q.shutdownServers(q.servers)
}
