package taskhost

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/connerr"
)

// queueClient is the client asynq runs on: a pool of its own, so cache and
// limiter traffic cannot starve heartbeats and lease extensions. It guards
// asynq v0.26.0 against two faults of its own while Redis is unreachable
// (measured in docs/reliability.md, "Queue safety"):
//
//   - the subscriber leaks a PubSub connection each time a subscribe fails
//     (asynq issue #1095, fixed after the release), and retries every 5 s:
//     Subscribe waits until Redis is ready (or the queue stops), confirms the
//     subscription within a bound, and closes the PubSub itself when that
//     fails, handing asynq a closed client's PubSub that fails without
//     dialing;
//   - the processor retries a failed dequeue without pausing (asynq PR
//     #1058): once a queue command fails to reach Redis, each command first
//     waits a short, context-aware pause until one succeeds, which turns the
//     busy loop into a slow poll (see throttleHook).
type queueClient struct {
	redis.UniversalClient
	ready func() bool
	// await blocks until Redis is ready (true) or ctx ends (false).
	await func(ctx context.Context) bool
	dead  *redis.Client // closed; its Subscribe fails without dialing

	// stopCtx ends when the queue shuts down, so a Subscribe waiting for
	// Redis returns and asynq's subscriber can stop.
	stopCtx  context.Context
	stop     context.CancelFunc
	stopOnce sync.Once
}

// subscribeConfirm bounds the wait for Redis to confirm a subscription.
// asynq waits for it without a deadline, which against a Redis frozen at
// that moment would hang the subscriber, and with it the server's shutdown.
const subscribeConfirm = 2 * time.Second

// pauseWhileDown is how long a queue command waits while the queue cannot
// reach Redis. It bounds asynq's dequeue loop to about 5 attempts a second.
const pauseWhileDown = 200 * time.Millisecond

func newQueueClient(c redis.UniversalClient, ready func() bool, await func(ctx context.Context) bool) *queueClient {
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:0"})
	_ = dead.Close()
	stopCtx, stop := context.WithCancel(context.Background())
	q := &queueClient{UniversalClient: c, ready: ready, await: await, dead: dead, stopCtx: stopCtx, stop: stop}
	c.AddHook(newThrottleHook())
	return q
}

// release makes a Subscribe that waits for Redis give up, at once and from
// then on. The queue calls it before asynq's server shuts down, because that
// shutdown waits for the subscriber goroutine.
func (q *queueClient) release() { q.stopOnce.Do(q.stop) }

// Close releases waiting subscribers and closes the underlying client.
func (q *queueClient) Close() error {
	q.release()
	return q.UniversalClient.Close()
}

// Subscribe subscribes on the real client once Redis is ready. It returns a
// PubSub whose subscription Redis has confirmed, with a PING queued behind
// it whose answer asynq's Receive reads; or, when Redis is not ready before
// the queue stops, or does not confirm in time, a PubSub that fails at once.
// A failed attempt leaves no connection open.
func (q *queueClient) Subscribe(ctx context.Context, channels ...string) *redis.PubSub {
	if !q.waitReady(ctx) {
		return q.dead.Subscribe(ctx, channels...)
	}
	ps := q.UniversalClient.Subscribe(ctx, channels...)
	if err := confirm(ctx, ps, len(channels)); err != nil {
		_ = ps.Close()
		return q.dead.Subscribe(ctx, channels...)
	}
	return ps
}

// confirm reads the subscription confirmations of n channels within
// subscribeConfirm, then queues a PING so that the caller's own Receive
// gets an answer (a Pong) instead of the confirmation read here.
func confirm(ctx context.Context, ps *redis.PubSub, n int) error {
	ctx, cancel := context.WithTimeout(ctx, subscribeConfirm)
	defer cancel()
	for range n {
		if _, err := ps.ReceiveTimeout(ctx, subscribeConfirm); err != nil {
			return err
		}
	}
	if n == 0 {
		return nil
	}
	return ps.Ping(ctx)
}

// waitReady waits until Redis is ready, ctx ends or the queue stops.
func (q *queueClient) waitReady(ctx context.Context) bool {
	if q.ready() {
		return true
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	unhook := context.AfterFunc(q.stopCtx, cancel)
	defer unhook()
	return q.await(ctx)
}

// throttleHook pauses each queue command for pauseWhileDown after a queue
// command failed to reach Redis, until one succeeds. It goes by the queue
// pool's own results rather than the monitor's state: the monitor probes
// through the application pool, which an application can exhaust while
// Redis itself answers, and the queue must then keep its full pace.
type throttleHook struct{ failing *atomic.Bool }

func newThrottleHook() throttleHook { return throttleHook{failing: new(atomic.Bool)} }

func (h throttleHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h throttleHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.pause(ctx)
		err := next(ctx, cmd)
		h.note(err)
		return err
	}
}

func (h throttleHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.pause(ctx)
		err := next(ctx, cmds)
		h.note(err)
		return err
	}
}

// note records whether Redis could serve (connerr.Down). Replies that are
// errors about the call (such as NOSCRIPT or WRONGTYPE) reached it.
func (h throttleHook) note(err error) {
	switch {
	case connerr.Down(err):
		if !h.failing.Load() {
			h.failing.Store(true)
		}
	case h.failing.Load():
		h.failing.Store(false)
	}
}

func (h throttleHook) pause(ctx context.Context) {
	if !h.failing.Load() {
		return
	}
	t := time.NewTimer(pauseWhileDown)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// QueuePoolStats returns the stats of the queue pool, the connections of
// asynq's server, scheduler and inspector (PubSubStats counts the
// subscriber's). Redis().PoolStats() gives the application pool's.
func (r *Runtime) QueuePoolStats() *redis.PoolStats { return r.qrdb.PoolStats() }

var (
	_ redis.Hook            = throttleHook{}
	_ redis.UniversalClient = (*queueClient)(nil)
)
