// Command embed is the smallest program that embeds taskhost: one Redis URL,
// and the runtime runs the queue, cache and limiter until interrupted.
package main

import (
	"context"
	"log"
	"os"
	"os/signal"

	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rt, err := taskhost.New(taskhost.Config{
		Redis:  taskhost.RedisConfig{URL: os.Getenv("REDIS_URL")},
		Health: taskhost.HealthConfig{Addr: os.Getenv("HEALTH_ADDR")}, // "" is 127.0.0.1:8080
	}, taskhost.Options{})
	if err != nil {
		log.Fatal(err)
	}
	go func() { // enqueue once Redis is ready; the outbox would hold it until then anyway
		if rt.WaitReady(ctx) == nil {
			info, err := rt.Client().EnqueueContext(ctx, asynq.NewTask("email:welcome", []byte(`{"to":"ann@example.com"}`)))
			log.Println("enqueued", info.ID, err)
		}
	}()
	if err := rt.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
