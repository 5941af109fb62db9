package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost"
)

// worker is a started worker.
type worker struct {
	stop   func(ctx context.Context) error // graceful stop
	health string                          // taskhost's health listener; "" for bare asynq
}

// readyWait bounds how long a worker may take to reach Redis at start.
const readyWait = 15 * time.Second

func startWorker(ctx context.Context, spec childSpec, h asynq.Handler) (worker, error) {
	if spec.side == sideBare {
		return startBare(ctx, spec, h)
	}
	return startTaskhost(ctx, spec, h)
}

// startBare starts asynq as its README shows it, with a no-op handler: the
// baseline. It is ready once Redis answers a PING.
func startBare(ctx context.Context, spec childSpec, h asynq.Handler) (worker, error) {
	opt, err := asynq.ParseRedisURI(spec.redisURL)
	if err != nil {
		return worker{}, err
	}
	srv := asynq.NewServer(opt, asynq.Config{
		Concurrency: spec.concurrency,
		Queues:      map[string]int{queueName: 1},
	})
	if err := srv.Start(h); err != nil {
		return worker{}, fmt.Errorf("bare asynq: start: %w", err)
	}
	if err := pingUntil(ctx, spec.redisURL); err != nil {
		srv.Shutdown()
		return worker{}, err
	}
	return worker{stop: func(context.Context) error { srv.Shutdown(); return nil }}, nil
}

func pingUntil(ctx context.Context, url string) error {
	o, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	c := redis.NewClient(o)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, readyWait)
	defer cancel()
	for {
		if err := c.Ping(ctx).Err(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis at %s not reachable: %w", url, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// unrelatedType has a task rate limit so that the rate limit middleware is
// in the chain; the bench tasks are of another type.
const unrelatedType = "bench:unrelated"

// taskhostConfig is the config of the taskhost side: the defaults with every
// middleware on, logging at info (to io.Discard, so its cost is paid but not
// printed) and the bench plugin enabled.
func taskhostConfig(redisURL string, concurrency int) taskhost.Config {
	cfg := taskhost.DefaultConfig()
	cfg.Redis.URL = redisURL
	cfg.Health.Addr = "127.0.0.1:0"
	cfg.Log.Level = "info"
	cfg.Worker.Concurrency = concurrency
	cfg.Worker.Queues = map[string]int{queueName: 1}
	cfg.RateLimit.Tasks = map[string]string{unrelatedType: "100-S"}
	cfg.Plugins = map[string]map[string]any{pluginID: {}}
	return cfg
}

// startTaskhost starts the runtime with the bench plugin, whose handler is
// h. It is ready once the connection monitor reports ready.
func startTaskhost(ctx context.Context, spec childSpec, h asynq.Handler) (worker, error) {
	setPluginHandler(h)
	rt, err := taskhost.New(taskhostConfig(spec.redisURL, spec.concurrency),
		taskhost.Options{LogOutput: io.Discard, Version: "bench"})
	if err != nil {
		return worker{}, err
	}
	if err := startReady(ctx, rt); err != nil {
		return worker{}, err
	}
	return worker{stop: rt.Stop, health: rt.HealthAddr()}, nil
}

// startReady starts rt and waits for its connection to be ready; on failure
// it stops rt.
func startReady(ctx context.Context, rt *taskhost.Runtime) error {
	if err := rt.Start(ctx); err != nil {
		return fmt.Errorf("taskhost: start: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, readyWait)
	defer cancel()
	if err := rt.WaitReady(wctx); err != nil {
		_ = rt.Stop(context.Background())
		return fmt.Errorf("taskhost: redis not ready: %w", err)
	}
	return nil
}
