package taskhost

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// ErrAlreadyStarted is returned by Start on a runtime that was started before.
var ErrAlreadyStarted = errors.New("taskhost: already started")

// Start brings the worker up in this order:
//
//  1. config (validated by New);
//  2. the connection: the embedded Redis in development, then the state
//     monitor, which never waits for Redis;
//  3. cache and limiter, switched by the monitor's state;
//  4. plugins, through Provision and Validate;
//  5. the health server, with the dashboard at /ui unless ui.addr gives it
//     a listener of its own, started next;
//  6. the asynq server;
//  7. the scheduler;
//  8. plugin services.
//
// A failure at any step undoes the steps before it, in reverse.
func (r *Runtime) Start(ctx context.Context) (err error) {
	r.mu.Lock()
	if r.phase != phaseNew {
		r.mu.Unlock()
		return ErrAlreadyStarted
	}
	r.phase = phaseStarting
	r.mu.Unlock()

	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
			r.mu.Lock()
			r.phase = phaseStopped
			r.mu.Unlock()
		}
	}()

	// 2. The connection.
	if r.cfg.Redis.Mode == "embedded" {
		m, err := startEmbedded(r.cfg.Redis.Embedded.Addr, r.log)
		if err != nil {
			return err
		}
		r.embedded = m
		undo = append(undo, func() { m.Close() })
	}
	// 3. Cache and limiter follow the monitor since New (watchReady); the
	// outbox and the metrics from its first state.
	r.unsub = append(r.unsub, r.monitor.Subscribe(r.onState))
	r.onState(r.monitor.State(), r.monitor.State())
	r.monitor.Start()
	undo = append(undo, r.closeConnection)

	// 4. Plugins.
	if err := r.plugins.ProvisionAll(ctx); err != nil {
		return err
	}
	undo = append(undo, r.plugins.Cleanup)
	if err := r.checkScheduleTypes(r.cfg); err != nil {
		return err
	}
	r.warnHandlers()

	// 5. Health server.
	if err := r.startHTTP(); err != nil {
		return err
	}
	undo = append(undo, func() { r.stopHTTP(context.Background()) })
	if err := r.startUI(); err != nil {
		return err
	}
	undo = append(undo, func() { r.stopUI(context.Background()) })

	// 6 and 7. asynq server, then scheduler (taskhost's: schedule.go).
	if err := r.queue.start(r.handler()); err != nil {
		return fmt.Errorf("start queue server: %w", err)
	}
	r.fetching.Store(true)
	undo = append(undo, func() { r.fetching.Store(false); r.queue.shutdown() })

	// 8. Plugin services.
	if err := r.plugins.Start(ctx); err != nil {
		return err
	}

	r.mu.Lock()
	r.phase = phaseRunning
	r.mu.Unlock()
	r.log.Info("worker started", "component", "runtime", "version", r.version,
		"redis", r.cfg.Redis.Mode, "health", r.healthAddr(), "plugins", r.plugins.Len(),
		"fetchers", len(r.queue.servers), "concurrency", r.cfg.Worker.Concurrency)
	return nil
}

// Stop stops the worker in the reverse of the start order. The asynq server
// stops fetching first; in-flight tasks get worker.shutdown_timeout to
// finish and asynq requeues the rest. The Redis clients close last. Stop may
// be called more than once; later calls return nil at once.
func (r *Runtime) Stop(ctx context.Context) error {
	r.rl.mu.Lock() // a reload under way finishes first (reload.go)
	r.mu.Lock()
	was := r.phase
	r.phase = phaseStopped
	r.mu.Unlock()
	r.rl.mu.Unlock()
	switch was {
	case phaseNew: // never started: release what New built
		r.closeConnection()
		return nil
	case phaseRunning:
	default:
		return nil
	}

	// The steps are detail; the stop is one line when it is done, and one
	// before it if in-flight tasks make it wait.
	began := time.Now()
	step := func(name string) { r.log.Debug("shutdown: "+name, "component", "runtime") }
	var errs []error

	step("stopping plugin services")
	errs = append(errs, r.plugins.Stop(ctx))

	step("stopping scheduler and queue server")
	r.fetching.Store(false)
	if n := r.tasks.inFlight.Load(); n > 0 {
		r.log.Info("stopping: waiting for in-flight tasks", "component", "runtime",
			"tasks", n, "shutdown_timeout", r.cfg.Worker.ShutdownTimeout)
	}
	r.queue.shutdown()

	step("stopping health server and dashboard")
	r.stopUI(ctx)
	r.stopHTTP(ctx)

	step("cleaning up plugins")
	r.plugins.Cleanup()

	step("closing outbox, monitor and redis clients")
	r.closeConnection()

	r.log.Info("worker stopped", "component", "runtime", "took", time.Since(began).Round(time.Millisecond))
	return errors.Join(errs...)
}

// StopFetching stops taking new tasks while in-flight ones finish (SIGTSTP).
// Only Stop undoes it.
func (r *Runtime) StopFetching() {
	if r.fetching.Swap(false) {
		r.log.Info("stopped fetching new tasks", "component", "runtime")
		r.queue.stopFetching()
	}
}

// Run starts the worker, waits for ctx to end, then stops it with a grace
// period of worker.shutdown_timeout plus a margin.
func (r *Runtime) Run(ctx context.Context) error {
	if err := r.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), r.cfg.Worker.ShutdownTimeout+10*time.Second)
	defer cancel()
	return r.Stop(stopCtx)
}

// closeConnection closes, in order, the outbox client, the monitor, the
// Redis clients and the embedded Redis, then exports the spans still
// buffered. The clients close last of all.
func (r *Runtime) closeConnection() {
	for _, u := range r.unsub {
		u()
	}
	r.unsub = nil
	if r.monitor.Ready() {
		// Deliver what the outbox holds while Redis can take it.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := r.client.Flush(ctx); err != nil {
			r.log.Warn("outbox not fully delivered before stop", "component", "outbox", "error", err)
		}
		cancel()
	}
	if err := r.client.Close(); err != nil {
		r.log.Warn("close outbox", "component", "outbox", "error", err)
	}
	r.monitor.Close()
	r.cache.Close()
	_ = r.limits.Close()
	_ = r.qrdb.Close()
	_ = r.rdb.Close()
	_ = r.probe.Close()
	if r.embedded != nil {
		r.embedded.Close()
	}
	r.stopTracing()
}

// handler is the mux behind the middleware, from the outside in: the
// task's span (only with tracing on); panic recovery; logging and metrics; the default task timeout; rounding a rate
// limit's retry time up to asynq's whole seconds; the rate limit hook; the
// answer to a task without a handler; the handler.
func (r *Runtime) handler() asynq.Handler {
	r.rl.tasks = newTaskLimits(r.noHandlerMiddleware(r.queue.mux), r.taskLimit) // a reload swaps it
	var h asynq.Handler = r.rl.tasks
	h = retryAtSecondMiddleware(h)
	h = payloadMiddleware(r.cfg.Worker.MaxPayloadBytes)(h)
	h = timeoutMiddleware(r.cfg.Worker.TaskTimeout)(h)
	h = observeMiddleware(r.log.With("component", "task"), &r.tasks)(h)
	h = recoverMiddleware(r.log.With("component", "task"))(h)
	if r.tracer != nil {
		h = traceMiddleware(r.tracer)(h)
	}
	return h
}

func (r *Runtime) healthAddr() string {
	if r.httpLn != nil {
		return r.httpLn.Addr().String()
	}
	return ""
}
