package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost"
)

// Line is what the producer prints once it has enqueued.
type Line struct {
	ID      string `json:"id"`
	Held    bool   `json:"held"`
	TraceID string `json:"trace_id"`
	// RootSpan is the span the producer enqueued in.
	RootSpan string `json:"root_span"`
}

func main() { os.Exit(run()) }

func run() int {
	var (
		redisURL = flag.String("redis-url", os.Getenv("REDIS_URL"), "Redis URL (default $REDIS_URL)")
		mode     = flag.String("mode", "client", "client (taskhost's client) or plain (asynq.Client with InjectTrace)")
		taskType = flag.String("type", "webhook:deliver", "task type")
		payload  = flag.String("payload", "{}", "task payload")
		ready    = flag.Bool("wait-ready", true, "wait for Redis before enqueueing (false: enqueue at once, into the outbox while Redis is down)")
	)
	flag.Parse()
	if *redisURL == "" {
		fmt.Fprintln(os.Stderr, "producer: -redis-url or REDIS_URL is required")
		return 2
	}
	cfg := taskhost.DefaultConfig()
	cfg.Redis.URL = *redisURL
	cfg.Health.Addr = "127.0.0.1:0"
	cfg.Worker.Queues = map[string]int{"tracetest-producer": 1} // consume nothing of the test's
	cfg.Worker.Concurrency, cfg.Worker.Fetchers = 1, 1
	rt, err := taskhost.New(cfg, taskhost.Options{Version: "producer"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := rt.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		return 1
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = rt.Stop(sctx)
	}()

	for deadline := time.Now().Add(10 * time.Second); *ready && rt.State().String() != "ready"; {
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "producer: Redis not ready within 10s")
			return 1
		}
		time.Sleep(10 * time.Millisecond)
	}
	sctx, span := rt.TracerProvider().Tracer("producer").Start(ctx, "producer.request")
	var line Line
	switch *mode {
	case "client":
		res, err := rt.Client().Submit(sctx, asynq.NewTask(*taskType, []byte(*payload)))
		if err != nil {
			fmt.Fprintln(os.Stderr, "producer: submit:", err)
			return 1
		}
		line.ID, line.Held = res.Info.ID, res.Held
	case "plain":
		client := asynq.NewClientFromRedisClient(rt.Redis())
		task := asynq.NewTaskWithHeaders(*taskType, []byte(*payload), taskhost.InjectTrace(sctx, nil))
		info, err := client.EnqueueContext(sctx, task)
		if err != nil {
			fmt.Fprintln(os.Stderr, "producer: enqueue:", err)
			return 1
		}
		line.ID = info.ID
	default:
		fmt.Fprintln(os.Stderr, "producer: -mode is client or plain")
		return 2
	}
	span.End()
	line.TraceID, line.RootSpan = span.SpanContext().TraceID().String(), span.SpanContext().SpanID().String()
	b, _ := json.Marshal(line)
	fmt.Println(string(b))
	<-ctx.Done()
	return 0
}
