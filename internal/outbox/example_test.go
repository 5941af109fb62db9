package outbox_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/outbox"
)

// While Redis is not ready, Enqueue returns at once and the task waits in
// the outbox with its ID; Kick delivers it once Redis is ready.
func Example() {
	shared := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // the process's one client
	defer shared.Close()
	var ready atomic.Bool // in taskhost, the connection monitor answers this

	c, err := outbox.New(asynq.NewClientFromRedisClient(shared), ready.Load, outbox.Options{
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	defer c.Close() // a memory outbox loses what it still holds; see Options.Store

	r, err := c.Submit(context.Background(), asynq.NewTask("email:welcome", []byte(`{"user":42}`)),
		asynq.TaskID("welcome-42"), asynq.Queue("mail"))
	if err != nil {
		panic(err)
	}
	tasks, _ := c.Depth()
	fmt.Println(r.Info.ID, r.Info.Queue, r.Info.State, r.Held)
	fmt.Println("held:", tasks, c.Held("welcome-42"))
	// Output:
	// welcome-42 mail pending true
	// held: 1 true
}
