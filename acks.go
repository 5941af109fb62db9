package taskhost

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/quarantine"
)

// Write-behind acknowledgements. asynq's processor holds a task's slot
// until the script that marks the task done has answered: a round trip per
// task in which the slot runs nothing. The fetchers hand the scripts that
// acknowledge a success (done and mark-as-complete, unique or not) to the
// acker and answer asynq at once, so the slot takes its next task while the
// acknowledgement is on its way; the acker's goroutines send them through
// the autopipeliner, many to a round trip.
//
// At-least-once is unchanged: the task stays active and leased in Redis
// until its acknowledgement lands, and a worker that dies first leaves it to
// lease recovery, as it leaves a task whose acknowledgement had not yet
// answered. An acknowledgement that fails because Redis cannot serve is
// retried as an inline one is (recoverer.go): every completionRetry and as
// soon as Redis is ready, until it lands or the task's lease ends. Failures
// (retry, archive) stay inline: they are rare, and asynq logs them.
//
// Bounds: the acker holds at most worker.concurrency acknowledgements; when
// it is full, the call runs inline as before, so unacknowledged tasks never
// exceed twice the concurrency. At shutdown, once asynq's servers have
// stopped (no acknowledgement can come after), close waits for those held,
// for at most ackGrace past the shutdown while Redis does not answer; what
// is left then runs again after its lease, as an unacknowledged task would.
//
// The acker runs taskhost's own acknowledgement script (ackScript), not
// asynq's: asynq retries its own scripts after NOSCRIPT with their text,
// which taskhost does not have, while a script of ours is sent again with
// its text by go-redis. It has the effects of asynq v0.26.0's four scripts
// (TestAckScriptMatchesAsynq), and looks for the task from the tail of the
// active list, where the oldest tasks are, instead of scanning all of it.

// successScripts are the completion scripts that acknowledge a success.
var successScripts = map[string]bool{
	doneSHA: true, doneUniqueSHA: true, markAsCompleteSHA: true, markAsCompleteUniqueSHA: true,
}

// ackScript acknowledges a task that succeeded. KEYS and ARGV are those of
// asynq's done script (3 ARGV: the task's hash is deleted) or of its
// mark-as-complete script (5 ARGV: the task is kept in the completed set),
// each with the task's unique lock as an optional last key.
//
// done:     KEYS active, lease, task, processed:<day>, processed [, unique]
//
//	ARGV id, stats expiry, max int64
//
// complete: KEYS active, lease, completed, task, processed:<day>, processed [, unique]
//
//	ARGV id, stats expiry, completed until, message, max int64
var ackScript = redis.NewScript(`
local id = ARGV[1]
-- Dequeues push at the head of the active list: an ending task is most
-- likely near its tail.
if redis.call("LREM", KEYS[1], -1, id) == 0 or redis.call("ZREM", KEYS[2], id) == 0 then
  return redis.error_reply("NOT FOUND")
end
local day, total, unique
if #ARGV == 3 then
  if redis.call("DEL", KEYS[3]) == 0 then
    return redis.error_reply("NOT FOUND")
  end
  day, total, unique = KEYS[4], KEYS[5], KEYS[6]
else
  if redis.call("ZADD", KEYS[3], ARGV[3], id) ~= 1 then
    return redis.error_reply("INTERNAL")
  end
  redis.call("HSET", KEYS[4], "msg", ARGV[4], "state", "completed")
  day, total, unique = KEYS[5], KEYS[6], KEYS[7]
end
if redis.call("INCR", day) == 1 then
  redis.call("EXPIREAT", day, ARGV[2])
end
-- The running total starts again at 1 after the largest int64.
if redis.call("GET", total) == ARGV[#ARGV] then
  redis.call("SET", total, 1)
else
  redis.call("INCR", total)
end
if unique and redis.call("GET", unique) == id then
  redis.call("DEL", unique)
end
return redis.status_reply("OK")
`)

// ackGrace bounds close's wait for acknowledgements that Redis does not
// take.
const ackGrace = 5 * time.Second

// ackers is the number of goroutines sending acknowledgements at most; each
// waits for one round trip at a time, and the autopipeliner puts what they
// send together.
const ackers = 256

type acker struct {
	rdb   redis.Scripter // the autopipeliner, else the client
	await func(ctx context.Context) bool
	bound time.Duration // one attempt after an outage: syncBound
	log   *slog.Logger

	grace time.Duration // ackGrace
	ch    chan ack
	ctx   context.Context // ends grace after close
	stop  context.CancelFunc
	wg    sync.WaitGroup

	mu     sync.RWMutex
	closed bool
}

type ack struct {
	lease time.Time
	keys  []string
	args  []any
}

func newAcker(rdb redis.Scripter, capacity int, bound time.Duration, await func(context.Context) bool, log *slog.Logger) *acker {
	ctx, stop := context.WithCancel(context.Background())
	return &acker{rdb: rdb, await: await, bound: bound, log: log, grace: ackGrace,
		ch: make(chan ack, capacity), ctx: ctx, stop: stop}
}

// start starts the goroutines that send the acknowledgements.
func (a *acker) start() {
	for range min(cap(a.ch), ackers) {
		a.wg.Go(a.run)
	}
}

// submit takes the acknowledgement of a task that asynq's processor is
// marking done (ctx is its call's, whose deadline is the task's lease); it
// reports false when the call should run inline: the acker is full or
// closed, or the call has no lease.
func (a *acker) submit(ctx context.Context, keys []string, args []any) bool {
	lease, ok := ctx.Deadline()
	if !ok || ctx.Err() != nil || len(args) == 0 {
		return false
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.closed {
		return false
	}
	select {
	case a.ch <- ack{lease: lease, keys: keys, args: args}:
		return true
	default:
		return false
	}
}

func (a *acker) run() {
	for x := range a.ch {
		a.deliver(x)
	}
}

// deliver sends x until it lands, its lease ends or close's grace does.
func (a *acker) deliver(x ack) {
	if !time.Now().Before(x.lease) {
		// Past the lease the recoverer may have given the task to another
		// worker, from under which a late ack would remove it.
		a.lost(x, context.DeadlineExceeded)
		return
	}
	run := func(ctx context.Context) *redis.Cmd { return ackScript.Run(ctx, a.rdb, x.keys, x.args...) }
	cmd := retryWhileDown(a.ctx, a.ctx.Done(), x.lease, a.bound, a.await, run(a.ctx), run)
	if err := cmd.Err(); err != nil {
		a.lost(x, err) // NOT FOUND: the task is no longer active; else Redis did not answer in time
	}
}

// lost reports an acknowledgement given up on: its task runs again once its
// lease has ended, as asynq's own gives it up.
func (a *acker) lost(x ack, err error) {
	id, _ := x.args[0].(string)
	a.log.Warn("could not acknowledge a finished task; it runs again after its lease ends",
		"queue", quarantine.QueueOf(x.keys[0]), "task_id", id, "error", err)
}

// close waits for the acknowledgements held, for ackGrace at most while
// Redis does not take them. Submissions after close run inline.
func (a *acker) close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	close(a.ch)
	a.mu.Unlock()
	t := time.AfterFunc(a.grace, a.stop)
	a.wg.Wait()
	t.Stop()
	a.stop()
}
