package runtime

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// queueClient is the client asynq runs on. It guards asynq v0.26.0 against
// two faults of its own while Redis is unreachable:
//
//   - the subscriber leaks a PubSub connection each time a subscribe fails
//     (asynq issue #1095, fixed after the release): while Redis is not ready,
//     Subscribe is answered by a closed client, so the attempt fails at once
//     without opening a connection;
//   - the processor retries a failed dequeue without pausing (asynq PR
//     #1058): while Redis is not ready, each command first waits a short,
//     context-aware pause, which turns the busy loop into a slow poll.
type queueClient struct {
	redis.UniversalClient
	ready func() bool
	// await waits up to a bound for Redis to be ready; a worker that starts
	// as Redis comes up subscribes at once instead of after asynq's 5 s retry.
	await func(ctx context.Context) bool
	dead  *redis.Client // closed; its Subscribe fails without dialing
}

// subscribeWait bounds how long Subscribe waits for Redis to become ready.
const subscribeWait = 2 * time.Second

// pauseWhileDown is how long a queue command waits while Redis is not ready.
const pauseWhileDown = 200 * time.Millisecond

func newQueueClient(c redis.UniversalClient, ready func() bool, await func(ctx context.Context) bool) *queueClient {
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:0"})
	_ = dead.Close()
	q := &queueClient{UniversalClient: c, ready: ready, await: await, dead: dead}
	c.AddHook(throttleHook{ready: ready})
	return q
}

// Subscribe subscribes on the real client only while Redis is ready.
func (q *queueClient) Subscribe(ctx context.Context, channels ...string) *redis.PubSub {
	if !q.ready() {
		wctx, cancel := context.WithTimeout(ctx, subscribeWait)
		ok := q.await(wctx)
		cancel()
		if !ok {
			return q.dead.Subscribe(ctx, channels...)
		}
	}
	return q.UniversalClient.Subscribe(ctx, channels...)
}

// throttleHook pauses queue commands while Redis is not ready.
type throttleHook struct{ ready func() bool }

func (h throttleHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h throttleHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.pause(ctx)
		return next(ctx, cmd)
	}
}

func (h throttleHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.pause(ctx)
		return next(ctx, cmds)
	}
}

func (h throttleHook) pause(ctx context.Context) {
	if h.ready() {
		return
	}
	t := time.NewTimer(pauseWhileDown)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

var (
	_ redis.Hook            = throttleHook{}
	_ redis.UniversalClient = (*queueClient)(nil)
)
