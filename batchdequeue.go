package taskhost

import (
	"context"
	"crypto/rand"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/quarantine"
)

// Batched dequeues (worker.dequeue_batch). asynq's processor takes a slot,
// then dequeues one task with one round trip, so a drain costs a round trip
// per task on top of the task's completion. The batcher answers a fetcher's
// dequeue of a queue with one task and, in the same round trip, takes as
// many more of that queue as the process has free slots for, up to
// worker.dequeue_batch. The next dequeues of that queue, by any fetcher,
// get those tasks without a round trip.
//
// It never takes more tasks than there are free slots: a task held here
// has a slot waiting for it, and its fetcher's processor asks for it within
// microseconds, so the worker never sits on tasks that another worker of
// the fleet could run. A held task is leased from the moment it is taken,
// as asynq's own dequeue leases it; one still held after heldMax (a slot
// counted free was not) goes back to the head of its queue, well before its
// lease could expire, and so do those held when fetching stops. A worker
// that dies holding tasks leaves them to lease recovery, as it leaves the
// tasks it runs. A batch whose reply is lost to a timeout (a Redis stall) is
// claimed from the fetcher's receipt in Redis (quarantine.Guard.DequeueBatch)
// rather than left leased to nobody until lease recovery.

// heldMax is how long a task may wait in the batcher before it goes back
// to its queue: far below asynq's 30 s lease.
const heldMax = time.Second

type batcher struct {
	// owner is this process's part of the fetchers' receipt names.
	owner string
	rdb   redis.UniversalClient
	guard *quarantine.Guard
	max   int   // worker.dequeue_batch
	slots int64 // worker.concurrency
	log   *slog.Logger
	// wake brings idle fetchers back when tasks are held for them; nil
	// without wake-ups.
	wake func()

	// busy counts the tasks handed to asynq whose handler has not
	// returned; asynq frees the slot once the call that marks the task done
	// returns (at once for a success, which the acker acknowledges; a round
	// trip later for a failure). A task whose deadline passed before its
	// handler ran is never seen ending; take corrects the count when a
	// dequeue proves a slot free.
	busy atomic.Int64

	// sweeping is held while returnStale runs, so that close waits for it
	// before the runtime closes the Redis client.
	sweeping sync.Mutex

	mu     sync.Mutex
	held   map[string][]heldTask // by pending key, oldest first
	nheld  int
	sweep  *time.Timer // returns stale tasks; armed while tasks are held
	armed  bool        // a sweep is due
	closed bool
}

type heldTask struct {
	id, msg string
	at      time.Time
	keys    []string // the dequeue keys: pending, paused, active, lease
	prefix  string   // the task key prefix
}

func newBatcher(rdb redis.UniversalClient, guard *quarantine.Guard, max, slots int, log *slog.Logger) *batcher {
	return &batcher{owner: rand.Text()[:16], rdb: rdb, guard: guard, max: max, slots: int64(slots), log: log,
		held: map[string][]heldTask{}}
}

// take answers one dequeue call of asynq's, with its keys and arguments:
// a held task of that queue, or the first of a batch taken now.
//
// owner names the calling fetcher's receipt (see quarantine.Guard.DequeueBatch);
// a fetcher makes one dequeue call at a time.
func (b *batcher) take(ctx context.Context, keys []string, args []any, owner string) *redis.Cmd {
	// A dequeue means its fetcher has a free slot.
	for {
		n := b.busy.Load()
		if n < b.slots || b.busy.CompareAndSwap(n, b.slots-1) {
			break
		}
	}
	now := time.Now()
	b.mu.Lock()
	for h := b.held[keys[0]]; len(h) > 0; h = b.held[keys[0]] {
		t := h[0]
		b.drop(keys[0], 1)
		if now.Sub(t.at) < heldMax {
			b.mu.Unlock()
			b.busy.Add(1)
			return redis.NewCmdResult(t.msg, nil)
		}
		b.mu.Unlock()
		b.requeue(ctx, []heldTask{t})
		b.mu.Lock()
	}
	free := int(b.slots-b.busy.Load()) - b.nheld
	b.mu.Unlock()

	taken, err := b.guard.DequeueBatch(ctx, b.rdb, keys, args, min(max(free, 1), b.max), owner)
	if err != nil {
		return redis.NewCmdResult(nil, err)
	}
	b.busy.Add(1)
	if len(taken) > 1 {
		b.hold(keys, args[1], taken[1:], now)
	}
	return redis.NewCmdResult(taken[0].Msg, nil)
}

// hold keeps tasks for the next dequeues of their queue.
func (b *batcher) hold(keys []string, prefix any, taken []quarantine.Taken, now time.Time) {
	p, _ := prefix.(string)
	b.mu.Lock()
	if b.closed { // fetching stopped while the batch was under way
		b.mu.Unlock()
		ts := make([]heldTask, len(taken))
		for i, t := range taken {
			ts[i] = heldTask{id: t.ID, keys: keys, prefix: p}
		}
		b.requeue(context.Background(), ts)
		return
	}
	for _, t := range taken {
		b.held[keys[0]] = append(b.held[keys[0]], heldTask{id: t.ID, msg: t.Msg, at: now, keys: keys, prefix: p})
	}
	b.nheld += len(taken)
	b.arm(heldMax)
	b.mu.Unlock()
	if b.wake != nil {
		b.wake()
	}
}

// arm schedules a sweep in d unless one is due already, so that a stream
// of batches of one queue cannot put off the return of another queue's
// stale tasks; b.mu is held.
func (b *batcher) arm(d time.Duration) {
	switch {
	case b.armed:
	case b.sweep == nil:
		b.sweep, b.armed = time.AfterFunc(d, b.returnStale), true
	default:
		b.sweep.Reset(d)
		b.armed = true
	}
}

// drop removes the n oldest held tasks of a queue; b.mu is held.
func (b *batcher) drop(key string, n int) {
	h := b.held[key]
	clear(h[:n])
	if len(h) == n {
		delete(b.held, key)
	} else {
		b.held[key] = h[n:]
	}
	b.nheld -= n
}

// returnStale sends tasks held for heldMax or longer back to their queue,
// and comes back while tasks are held.
func (b *batcher) returnStale() {
	b.sweeping.Lock()
	defer b.sweeping.Unlock()
	now := time.Now()
	var stale []heldTask
	b.mu.Lock()
	for key, h := range b.held {
		n := 0
		for n < len(h) && now.Sub(h[n].at) >= heldMax {
			n++
		}
		stale = append(stale, h[:n]...)
		if n > 0 {
			b.drop(key, n)
		}
	}
	b.armed = false
	if b.nheld > 0 && !b.closed {
		b.arm(heldMax / 2)
	}
	b.mu.Unlock()
	if len(stale) > 0 {
		b.requeue(context.Background(), stale)
	}
}

// close returns every held task to its queue; fetching has stopped.
func (b *batcher) close() {
	var all []heldTask
	b.mu.Lock()
	b.closed = true
	for key, h := range b.held {
		all = append(all, h...)
		b.drop(key, len(h))
	}
	if b.sweep != nil {
		b.sweep.Stop()
	}
	b.mu.Unlock()
	b.sweeping.Lock() // a sweep under way finishes first
	b.sweeping.Unlock()
	b.requeue(context.Background(), all)
}

// requeue puts held tasks back at the head of their queues, as asynq
// requeues a task at shutdown. Where Redis does not answer, the tasks stay
// leased and lease recovery returns them.
func (b *batcher) requeue(ctx context.Context, ts []heldTask) {
	if len(ts) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	failed := 0
	var last error
	for _, t := range ts {
		err := requeueHeld.Run(ctx, b.rdb, []string{t.keys[2], t.keys[3], t.keys[0], t.prefix + t.id}, t.id).Err()
		if err != nil && err != redis.Nil {
			failed++
			last = err
		}
	}
	if failed > 0 {
		b.log.Warn("batched dequeue: could not return held tasks to their queue; lease recovery will",
			"tasks", failed, "error", last)
	}
}

// track counts the tasks asynq runs: from the dequeue that handed one out
// to the return of its handler. The slot is then finishing: asynq frees it
// once the call that marks the task done returns (a round trip for a
// failure; a success is handed to the acker), and a batch taken meanwhile
// holds a task for it, which it gets without a round trip of its own.
func (b *batcher) track(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		defer b.finished()
		return next.ProcessTask(ctx, t)
	})
}

func (b *batcher) finished() {
	if b.busy.Add(-1) < 0 {
		b.busy.Store(0)
	}
}

// requeueHeld returns one held task to the head of its queue, if it is
// still active: KEYS active, lease, pending, task key; ARGV task ID.
var requeueHeld = redis.NewScript(`
if redis.call("LREM", KEYS[1], 0, ARGV[1]) == 0 then return nil end
redis.call("ZREM", KEYS[2], ARGV[1])
redis.call("RPUSH", KEYS[3], ARGV[1])
redis.call("HSET", KEYS[4], "state", "pending")
return 1
`)
