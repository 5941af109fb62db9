package taskhost

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/redisconn"
)

// Blocking wake-ups, the default source (worker.wakeup: auto). They need no
// server config and no CONFIG command, so they work on managed services that
// refuse it, in Redis Cluster (each call goes to its key's node) and on the
// embedded Redis.
//
// For each queue a blocker sends, while fetchers wait,
//
//	BLMOVE <pending> <pending> LEFT LEFT <blockWait>
//
// on a client of its own (one connection per queue). It blocks until the
// pending list is non-empty, then moves the list's head to its head: the
// list is unchanged, and its order too. The reply wakes one fetcher (see
// wakeHub.wake). The call is level-triggered: it returns at once when
// the list already holds a task, so a push between a fetcher's empty round
// and the call is not missed. After a wake-up the blocker sends its next
// call only once a fetcher has started to wait again, so that a task not yet
// dequeued does not answer the call over and over; and not at all during a
// drain, when no fetcher waits.
//
// Redis before 6.2 has no BLMOVE. There the blocker uses BRPOPLPUSH
// <pending> <pending> (Redis 2.2), which moves the list's tail (the oldest
// task, next to be dequeued) to its head: when several tasks arrived at
// once, one of them moves behind the others, once per wake-up. Where both
// are refused (an ACL without them), the fetchers poll adaptively.
//
// Cost: an idle worker sends one call per queue per blockWait. Each wake-up
// is a write (LMOVE) that Redis propagates to its replicas and AOF, and one
// push wakes the blocker of every idle worker of the fleet.

const (
	// blockWait is the server-side timeout of a blocking call.
	blockWait = 5 * time.Second
	// blockGrace bounds a call client-side beyond blockWait, so that a
	// frozen Redis or a silently dead connection ends the call.
	blockGrace = 2 * time.Second
	// blockProbeWait is the timeout of the first call after a start or a
	// failure: a quick answer proves the command is allowed and Redis
	// reachable before the fetchers count on it. (BRPOPLPUSH before Redis
	// 6.0 takes whole seconds: its probe waits 1 s.)
	blockProbeWait = 10 * time.Millisecond
	// blockRetryMin and blockRetryMax bound the backoff after a failed
	// call (Redis down, restarting, failing over, out of memory).
	blockRetryMin = 50 * time.Millisecond
	blockRetryMax = 2 * time.Second
	// blockRefusedRetry is how long a blocker waits before trying again a
	// command Redis refused (an ACL may change).
	blockRefusedRetry = time.Minute
	// blockSpinMax caps the pause of a blocker whose wake-ups start no
	// task (see spinPause).
	blockSpinMax = time.Second
	// blockLook is the least idle bound of a fetcher while the blocking
	// reads are live (the first fetcher's is notifyWait otherwise). Every
	// way a task becomes pending is a push that ends a blocking read, and a
	// paused queue's tasks wake a fetcher each time its mute ends, which is
	// how an unpause is noticed; so the fetchers' own look is only a safety
	// net, against a blocking read stuck on a dead connection until its
	// deadline (blockWait + blockGrace). It costs 3 commands per queue per
	// look: 0.6/s per queue instead of asynq's 3/s.
	blockLook = 5 * time.Second
)

// Blocking commands, best first.
var blockCommands = []string{"blmove", "brpoplpush"}

// blockSource runs one blocker per pending list.
type blockSource struct {
	hub     *wakeHub
	newConn func() (redis.UniversalClient, error)
	rdb     redis.UniversalClient // its own pool, a connection per queue; set by dial
	keys    []string
	// level indexes blockCommands: the command every blocker uses. It only
	// goes up, when Redis does not know a command.
	level    atomic.Int32
	healthy  atomic.Int32 // blockers whose last call succeeded
	inFlight atomic.Int32 // blocking calls sent and not answered

	mu  sync.Mutex
	gen uint64        // bumped each time a fetcher starts to wait
	arm chan struct{} // closed (and replaced) with each bump
}

func newBlockSource(h *wakeHub, newConn func() (redis.UniversalClient, error), keys []string) *blockSource {
	return &blockSource{hub: h, newConn: newConn, keys: keys, arm: make(chan struct{})}
}

// dial builds the client; the hub calls it once, at start.
func (b *blockSource) dial() error {
	c, err := b.newConn()
	if err != nil {
		b.hub.log.Warn("wake-ups: no client for blocking reads", "error", err)
		return err
	}
	b.rdb = c
	return nil
}

// armed tells the blockers that a fetcher started to wait.
func (b *blockSource) armed() {
	b.mu.Lock()
	b.gen++
	close(b.arm)
	b.arm = make(chan struct{})
	b.mu.Unlock()
}

// run runs the blockers until ctx ends.
func (b *blockSource) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, key := range b.keys {
		wg.Go(func() { b.block(ctx, key) })
	}
	wg.Wait()
}

// blocker is one pending list's state, used by its goroutine only.
type blocker struct {
	key  string
	ok   bool   // the last call succeeded
	need uint64 // block only once the wait generation reaches need
	// lastWake is when the last wake-up was dispatched; spins counts the
	// wake-ups in a row after which no fetcher found a task.
	lastWake time.Time
	spins    int
}

// block keeps a blocking call on key in flight while fetchers wait.
func (b *blockSource) block(ctx context.Context, key string) {
	bl := &blocker{key: key}
	defer b.setOK(bl, false)
	backoff := blockRetryMin
	for ctx.Err() == nil {
		if !b.hub.await(ctx) || !b.waitArmed(ctx, bl.need) {
			return
		}
		if until := b.hub.mutedUntil(key); !until.IsZero() {
			b.sleep(ctx, time.Until(until))
			continue
		}
		if d := b.spinPause(bl); d > 0 {
			b.sleep(ctx, d)
		}
		wait := blockWait
		if !bl.ok {
			wait = blockProbeWait
		}
		level := int(b.level.Load())
		b.inFlight.Add(1)
		woke, err := b.call(ctx, blockCommands[level], key, wait)
		b.inFlight.Add(-1)
		switch {
		case err == nil:
			b.setOK(bl, true)
			backoff = blockRetryMin
			bl.need = 0
			if woke {
				b.mu.Lock()
				bl.need = b.gen + 1
				b.mu.Unlock()
				b.noteWake(bl)
				b.hub.wake(key)
			}
		case ctx.Err() != nil:
			return
		case isUnknownCommand(err) && level+1 < len(blockCommands):
			if b.level.CompareAndSwap(int32(level), int32(level+1)) {
				b.hub.say("block-level:"+blockCommands[level+1], slog.LevelInfo,
					"wake-ups: Redis has no "+strings.ToUpper(blockCommands[level])+" (before 6.2); blocking with "+
						strings.ToUpper(blockCommands[level+1])+", which may move one pending task behind the others per wake-up",
					"error", err)
			}
		case isRefusal(err):
			b.setOK(bl, false)
			b.hub.say("block-refused", slog.LevelWarn,
				"wake-ups: Redis refuses blocking reads; idle workers poll adaptively (5 ms to 1 s) instead. "+
					"Allow BLMOVE (or BRPOPLPUSH before Redis 6.2) on the asynq keys for millisecond start latency",
				"error", err)
			b.sleep(ctx, blockRefusedRetry)
		default: // Redis down, restarting, failing over, read-only, out of memory
			b.setOK(bl, false)
			b.hub.log.Debug("wake-ups: blocking read failed; polling until it works again", "key", key, "error", err)
			b.sleep(ctx, backoff)
			// While the monitor sees Redis down, the next loop waits for it
			// to be ready and then tries at once; the backoff grows only
			// while Redis answers others but fails this call.
			if b.hub.ready() {
				backoff = min(2*backoff, blockRetryMax)
			} else {
				backoff = blockRetryMin
			}
		}
	}
}

// call sends the blocking command on key with the server-side timeout wait.
// It reports whether the list held a task (woke) or the call timed out.
func (b *blockSource) call(ctx context.Context, cmd, key string, wait time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, wait+blockGrace)
	defer cancel()
	var err error
	switch {
	case cmd == "blmove" && wait < time.Second:
		// go-redis rounds a typed BLMove's timeout up to 1 s; Redis 6.2
		// takes fractions. The read deadline is ReadTimeout or ctx's.
		err = b.rdb.Do(ctx, "BLMOVE", key, key, "LEFT", "LEFT", strconv.FormatFloat(wait.Seconds(), 'f', 3, 64)).Err()
	case cmd == "blmove":
		err = b.rdb.BLMove(ctx, key, key, "LEFT", "LEFT", wait).Err()
	default:
		err = b.rdb.BRPopLPush(ctx, key, key, max(wait, time.Second)).Err()
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, redis.Nil):
		return false, nil
	}
	return false, err
}

// waitArmed waits until a fetcher waits and the wait generation reaches
// need, or ctx ends (false).
func (b *blockSource) waitArmed(ctx context.Context, need uint64) bool {
	for {
		b.mu.Lock()
		ok := b.hub.waiting.Load() > 0 && b.gen >= need
		arm := b.arm
		b.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-arm:
		case <-ctx.Done():
			return false
		}
	}
}

// blockSpinWindow: wake-ups closer together than this, with no task found
// between them, count as a spin.
const blockSpinWindow = 100 * time.Millisecond

// noteWake counts wake-ups in quick succession after which no fetcher found
// a task: a list that holds tasks no fetcher takes (none should: a paused
// queue is muted) would otherwise answer every call at once.
func (b *blockSource) noteWake(bl *blocker) {
	now := time.Now()
	if !bl.lastWake.IsZero() && now.Sub(bl.lastWake) < blockSpinWindow && b.hub.lastFound.Load() < bl.lastWake.UnixNano() {
		bl.spins++
	} else {
		bl.spins = 0
	}
	bl.lastWake = now
}

// spinPause is the pause before the next call after wake-ups that started
// nothing: 1 ms doubling to blockSpinMax.
func (b *blockSource) spinPause(bl *blocker) time.Duration {
	if bl.spins < 2 {
		return 0
	}
	return min(time.Millisecond<<min(bl.spins-2, 10), blockSpinMax)
}

// setOK records a blocker's health; the source is live when every blocker
// is. Losing it wakes the waiting fetchers, which look again and poll until
// it is back.
func (b *blockSource) setOK(bl *blocker, ok bool) {
	if bl.ok == ok {
		return
	}
	bl.ok = ok
	if ok {
		if int(b.healthy.Add(1)) == len(b.keys) {
			b.hub.setLive(WakeupBlock, true)
		}
		return
	}
	b.healthy.Add(-1)
	b.hub.setLive(WakeupBlock, false)
}

func (b *blockSource) sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// isUnknownCommand reports Redis' answer to a command it does not have (or
// that is renamed away).
func isUnknownCommand(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "ERR unknown command")
}

// isRefusal reports an answer that will not change by retrying soon: an
// ACL refusal, or an unknown command with no fallback left.
func isRefusal(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	return strings.HasPrefix(msg, "NOPERM") || strings.HasPrefix(msg, "ERR unknown command")
}

// wakeHubConfig is the hub of worker.wakeup (not off) for the worker's
// queues: the blocking reads get a client of their own, built from the same
// redis config, with a connection per queue (per queue per node in a
// cluster), so that a blocked call never takes a connection from asynq.
func wakeHubConfig(cfg Config, raw redis.UniversalClient, ready func() bool, await func(context.Context) bool,
	queues []string, log *slog.Logger) hubConfig {
	c := hubConfig{rdb: raw, ready: ready, await: await, mode: WakeupAuto, queues: queues,
		fetchers: cfg.Worker.Fetchers, log: log}
	switch strings.ToLower(cfg.Worker.Wakeup) {
	case WakeupPoll:
		c.pollOnly = "worker.wakeup is poll"
		return c
	case WakeupNotify:
		c.mode = WakeupNotify
		if cfg.Redis.Mode == ModeEmbedded {
			c.mode = WakeupAuto
			log.Info("wake-ups: worker.wakeup is notify, but the embedded Redis has no keyspace notifications; using blocking reads")
		}
	}
	bcfg := cfg.Redis
	bcfg.PoolSize, bcfg.MinIdleConns = max(len(queues), 1), 0
	c.block = func() (redis.UniversalClient, error) { return redisconn.NewClient(bcfg.conn()) }
	return c
}
