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
	cfg := taskhost.Config{Redis: taskhost.RedisConfig{URL: os.Getenv("REDIS_URL")}}
	cfg.Health.Addr = os.Getenv("HEALTH_ADDR") // "" is the default, 127.0.0.1:8080
	rt, err := taskhost.New(cfg, taskhost.Options{})
	if err != nil {
		log.Fatal(err) // every bad key at once; errors.Is(err, taskhost.ErrInvalidConfig)
	}
	// Held in the outbox until Redis is ready, then delivered once, by its ID.
	info, err := rt.Client().Enqueue(asynq.NewTask("email:welcome", []byte(`{"to":"ann@example.com"}`)))
	log.Println("enqueued", info.ID, err)
	if err := rt.Run(ctx); err != nil { // serves until Ctrl-C, then stops gracefully
		log.Fatal(err)
	}
}
