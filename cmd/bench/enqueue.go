package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/redistest"
)

// enqueuer is asynq.Client's enqueue method, which taskhost's Client shares.
type enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

type enqueueFunc func(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)

// enqueueN enqueues n stamped tasks from parallel goroutines and returns the
// time it took.
func enqueueN(ctx context.Context, n, parallel int, fn enqueueFunc) (time.Duration, error) {
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	start := time.Now()
	for range parallel {
		g.Go(func() error {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				if _, err := fn(gctx, newTask(time.Now())); err != nil {
					return fmt.Errorf("task %d: %w", i, err)
				}
			}
			return nil
		})
	}
	err := g.Wait()
	return time.Since(start), err
}

// enqueue measures enqueue throughput in the harness process: for bare,
// asynq.Client from -enqueue-parallel goroutines and from one; for
// taskhost, its Client while Redis is ready (direct) and while Redis is
// down (held in the outbox, memory and file), then the outbox's replay.
func (h *harness) enqueue(ctx context.Context, side string) error {
	n, par := h.opts.n, h.opts.enqueueParallel
	// rate wipes Redis, then times n enqueues by the enqueuer that get
	// returns (after the wipe, which renews h.client).
	rate := func(key string, parallel int, get func() enqueueFunc) error {
		if err := h.flush(ctx); err != nil {
			return err
		}
		d, err := enqueueN(ctx, n, parallel, get())
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		h.add(side, key, float64(n)/d.Seconds())
		h.logf("%-8s %-28s %8.0f tasks/s", side, key, float64(n)/d.Seconds())
		return nil
	}
	bare := func() enqueueFunc { return h.client.EnqueueContext }
	if side == sideBare {
		if err := rate("enqueue_asynq_parallel", par, bare); err != nil {
			return err
		}
		return rate("enqueue_asynq_sequential", 1, bare)
	}

	rt, err := taskhost.New(h.runtimeConfig(h.url), taskhost.Options{LogOutput: io.Discard, Version: "bench"})
	if err != nil {
		return err
	}
	if err := startReady(ctx, rt); err != nil {
		return err
	}
	err = rate("enqueue_direct", par, func() enqueueFunc { return rt.Client().EnqueueContext })
	err = errors.Join(err, rt.Stop(context.Background()))
	if err != nil {
		return err
	}
	for _, store := range []string{"memory", "file"} {
		if err := h.outbox(ctx, store); err != nil {
			return fmt.Errorf("outbox %s: %w", store, err)
		}
	}
	return nil
}

// runtimeConfig is a runtime in the harness process that only enqueues: it
// serves a queue that no task goes to.
func (h *harness) runtimeConfig(url string) taskhost.Config {
	cfg := taskhost.DefaultConfig()
	cfg.Redis.URL = url
	cfg.Health.Addr = "127.0.0.1:0"
	cfg.Worker.Queues = map[string]int{"bench-unused": 1}
	cfg.Outbox.MaxTasks = max(cfg.Outbox.MaxTasks, h.opts.n)
	// Replay as fast as Redis takes it; the default of 2,000/s is a
	// deliberate bound, not a measurement.
	cfg.Outbox.DrainRate = 1e6 // the largest that outbox.drain_rate allows: the replay is not throttled
	return cfg
}

// fileOutboxMax caps the tasks of the file outbox measurement: each hold
// waits for an fsync, so 50,000 would take most of a minute per round.
const fileOutboxMax = 10000

// outbox holds n tasks in the outbox while Redis is down, then starts Redis
// and times the replay. Without redis-server on PATH, the runtime points at
// a closed port and the replay is skipped.
func (h *harness) outbox(ctx context.Context, store string) error {
	n := h.opts.n
	if store == "file" {
		n = min(n, fileOutboxMax)
	}
	var srv *redistest.Server
	var url string
	if h.ownRedis {
		var err error
		if srv, err = redistest.New(redistest.Options{}); err != nil {
			return err
		}
		defer srv.Close()
		srv.Kill() // the port stays closed until Restart
		url = srv.URL()
	} else {
		port, err := redistest.FreePort()
		if err != nil {
			return err
		}
		url = "redis://127.0.0.1:" + strconv.Itoa(port) + "/0"
	}
	cfg := h.runtimeConfig(url)
	if store == "file" {
		dir, err := os.MkdirTemp("", "bench-outbox-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.Outbox.Path = filepath.Join(dir, "outbox.db")
	}
	rt, err := taskhost.New(cfg, taskhost.Options{LogOutput: io.Discard, Version: "bench"})
	if err != nil {
		return err
	}
	if err := rt.Start(ctx); err != nil {
		return err
	}
	defer func() { _ = rt.Stop(context.Background()) }()

	hold := func(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
		r, err := rt.Client().Submit(ctx, t, opts...)
		if err == nil && !r.Held {
			err = errors.New("task went to Redis, want it held")
		}
		return r.Info, err
	}
	d, err := enqueueN(ctx, n, h.opts.enqueueParallel, hold)
	if err != nil {
		return err
	}
	key := "enqueue_outbox_" + store
	h.add(sideTaskhost, key, float64(n)/d.Seconds())
	h.logf("%-8s %-28s %8.0f tasks/s (Redis down, held)", sideTaskhost, key, float64(n)/d.Seconds())
	if srv == nil {
		return nil
	}

	if err := srv.Restart(); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := rt.WaitReady(wctx); err != nil {
		return fmt.Errorf("redis back: %w", err)
	}
	start := time.Now()
	deadline := start.Add(time.Minute + time.Duration(n)*time.Second/500)
	for depth, _ := rt.OutboxDepth(); depth > 0; depth, _ = rt.OutboxDepth() {
		if time.Now().After(deadline) {
			return fmt.Errorf("replay: %d of %d tasks still held after %s", depth, n, time.Since(start))
		}
		if err := sleep(ctx, time.Millisecond); err != nil {
			return err
		}
	}
	elapsed := time.Since(start)
	if err := expectPending(srv.Addr(), n); err != nil {
		return fmt.Errorf("after replay: %w", err)
	}
	key = "outbox_replay_" + store
	h.add(sideTaskhost, key, float64(n)/elapsed.Seconds())
	h.logf("%-8s %-28s %8.0f tasks/s (Redis back)", sideTaskhost, key, float64(n)/elapsed.Seconds())
	return nil
}

// expectPending checks that the Redis at addr holds n pending bench tasks.
func expectPending(addr string, n int) error {
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: addr})
	defer insp.Close()
	qi, err := insp.GetQueueInfo(queueName)
	if err != nil {
		return err
	}
	if qi.Pending != n {
		return fmt.Errorf("queue %s has %d pending tasks, want %d", queueName, qi.Pending, n)
	}
	return nil
}
