package taskhost

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Parallel fetchers: asynq's processor runs one dequeue at a time, a round
// trip per task, so one server drains at about one task per round trip
// whatever its concurrency. The worker runs worker.fetchers asynq servers on
// the same queue client, mux and middleware, each with a share of
// worker.concurrency, so that several dequeues are in flight.
//
// Only the first server runs the loops that need to run once per process:
// the forwarder (scheduled and retry tasks), the janitor and the health
// check. The others keep what each server needs for its own tasks: the
// heartbeat (which extends their leases), the recoverer and the
// cancellation subscriber.

// quietInterval disables a periodic loop of the extra servers in practice.
const quietInterval = 24 * time.Hour

// concurrencyShares splits total over n servers, each getting at least one;
// n shrinks to total when total is smaller.
func concurrencyShares(total, n int) []int {
	n = max(min(n, total), 1)
	out := make([]int, n)
	for i := range out {
		out[i] = total / n
		if i < total%n {
			out[i]++
		}
	}
	return out
}

// serverConfigs returns the asynq config of each fetcher: base with a share
// of its concurrency; the extra ones without the once-per-process loops.
// With wakeups, asynq's idle sleep shrinks to asynqRecheck, since the
// fetchClient does the waiting.
func serverConfigs(base asynq.Config, fetchers int, wakeups bool) []asynq.Config {
	shares := concurrencyShares(base.Concurrency, fetchers)
	out := make([]asynq.Config, len(shares))
	for i, n := range shares {
		c := base
		c.Concurrency = n
		if wakeups {
			c.TaskCheckInterval = asynqRecheck
		}
		if i > 0 {
			c.DelayedTaskCheckInterval = quietInterval
			c.JanitorInterval = quietInterval
			c.HealthCheckFunc = nil
		}
		out[i] = c
	}
	return out
}

// shutdownServers stops fetching on every server in servers, then shuts
// them all down at once, so that stopping takes one shutdown timeout, not
// one per server; then it stops the wake-ups.
func (q *queue) shutdownServers(servers []*asynq.Server) {
	q.release()
	q.haltOnce.Do(func() { close(q.halt) })
	parallel(servers, (*asynq.Server).Stop)
	if q.batch != nil {
		q.batch.close() // held tasks back to their queues
	}
	parallel(servers, (*asynq.Server).Shutdown)
	q.acks.close() // no acknowledgement can come after the servers' shutdown
	if q.hub != nil {
		q.hub.stop()
	}
}

// parallel runs fn for each server at once and waits for all.
func parallel(servers []*asynq.Server, fn func(*asynq.Server)) {
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(func() { fn(s) })
	}
	wg.Wait()
}

// fetchClient is the queue client of one asynq server. It passes every
// command through, except that it watches the dequeue script to wait for a
// wake-up when a round over all queues comes back empty (see wakeup.go;
// without a hub it does not), holds an extra fetcher's dequeues while Redis
// is down, sends asynq's other scripts through the autopipeliner when there
// is one, answers the recoverer of an extra fetcher with nothing to do, and
// lets asynq's syncer retry a completion after an outage (recoverer.go).
type fetchClient struct {
	redis.UniversalClient
	hub  *wakeHub
	halt <-chan struct{} // closed when fetching stops
	keys map[string]bool // pending keys of the server's queues
	idle time.Duration   // longest wait while notifications are on
	log  *slog.Logger
	said sync.Map
	// pipe batches the scripts other than the dequeue (worker.autopipeline):
	// the task-done script of many workers at once goes out as one pipeline.
	// nil sends them directly.
	pipe redis.Cmdable
	// standby, set on the extra fetchers, holds their dequeues while Redis
	// is not ready (until ready or halt), so that during an outage only the
	// first fetcher keeps trying, as a single asynq server would.
	standby func(halt <-chan struct{})
	// notRecoverer, set on the extra fetchers, answers asynq's recoverer
	// with nothing to recover (recoverer.go).
	notRecoverer bool
	// syncBound bounds each retry of a completion (recoverer.go); 0 turns
	// the retries off, leaving asynq's behaviour.
	syncBound time.Duration
	// await, when set, waits until Redis is ready (true) or ctx ends; the
	// retries of a completion use it to go again as soon as Redis is back.
	await func(ctx context.Context) bool

	// batch answers the dequeues with batches, shared by every fetcher;
	// nil with worker.dequeue_batch 1 (batchdequeue.go).
	batch *batcher
	// completer runs the completion scripts: pipe, else the client; the
	// queue sets the autopipeliner or client without the guard's wrapper,
	// which never replaces these scripts, so that the call that ends each
	// task runs fewer frames deep.
	completer redis.Cmdable
	// acks sends the acknowledgements of successes behind asynq's back
	// (acks.go), shared by every fetcher; nil runs them inline.
	acks *acker
	// receipt names this fetcher's batch receipt: the batcher's owner and
	// the fetcher's index.
	receipt string

	// The rest is used only by asynq's processor goroutine, the one caller
	// of the dequeue script.
	rounds   roundOrder // the weights of a reload (queueorder.go)
	round    []dequeueCall
	timedOut bool // the last wait ended without a wake-up, a source live
	polled   bool // the last wait ended without a wake-up, polling
	woken    bool // the last wait ended with a wake-up
}

// dequeueCall is one call of the dequeue script, as asynq made it.
type dequeueCall struct {
	sha    string
	script string // set when asynq fell back to EVAL
	keys   []string
	args   []any
}

func newFetchClient(rdb redis.UniversalClient, hub *wakeHub, pipe redis.Cmdable, halt <-chan struct{},
	queues []string, idle time.Duration, log *slog.Logger) *fetchClient {
	keys := make(map[string]bool, len(queues))
	for _, q := range queues {
		keys[pendingKey(q)] = true
	}
	f := &fetchClient{UniversalClient: rdb, hub: hub, pipe: pipe, halt: halt, keys: keys, idle: idle, log: log,
		completer: rdb}
	if pipe != nil {
		f.completer = pipe
	}
	return f
}

// standbyWhileDown returns a standby func over the monitor's ready and
// await: it returns at once while Redis is ready, else when Redis is ready
// again or halt closes.
func standbyWhileDown(ready func() bool, await func(ctx context.Context) bool) func(halt <-chan struct{}) {
	return func(halt <-chan struct{}) {
		if ready() {
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-halt:
				cancel()
			case <-ctx.Done():
			}
		}()
		await(ctx)
	}
}

// autoPipeliner returns go-redis' blocking autopipeliner on c, or nil where
// there is none (Redis Cluster). The client closes it.
func autoPipeliner(c redis.UniversalClient, log *slog.Logger) redis.Cmdable {
	rc, ok := c.(*redis.Client)
	if !ok {
		return nil
	}
	ap, err := rc.AutoPipeline()
	if err != nil {
		log.Warn("autopipeline unavailable; asynq's scripts go out one by one", "error", err)
		return nil
	}
	return ap
}

// EvalSha runs the script; a dequeue that finds every queue empty waits for
// a wake-up first. The recoverer's scripts and completions are corrected as
// recoverer.go says.
func (f *fetchClient) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	if !f.isDequeue(sha, keys) {
		if cmd := f.skipRecovery(ctx, sha); cmd != nil {
			return cmd
		}
		if completionScripts[sha] {
			if f.acks != nil && successScripts[sha] && f.acks.submit(ctx, keys, args) {
				return redis.NewCmdResult("OK", nil) // acks.go: on its way
			}
			return f.completion(ctx, func(ctx context.Context) *redis.Cmd {
				return f.completer.EvalSha(ctx, sha, keys, args...)
			})
		}
		if f.pipe != nil {
			return f.pipe.EvalSha(ctx, sha, keys, args...)
		}
		return f.UniversalClient.EvalSha(ctx, sha, keys, args...)
	}
	if f.standby != nil {
		f.standby(f.halt)
	}
	keys, args = f.rounds.rewrite(keys, args) // after standby: with the weights of now
	call := dequeueCall{sha: sha, keys: keys, args: args}
	cmd := f.run(ctx, call)
	if f.hub != nil {
		cmd = f.observe(ctx, cmd, call)
	}
	f.rounds.advance(cmd.Err(), len(f.keys))
	return cmd
}

// Eval is EvalSha's fallback after NOSCRIPT (a restarted Redis).
func (f *fetchClient) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	sha := scriptSHA(script)
	if cmd := f.skipRecovery(ctx, sha); cmd != nil {
		return cmd
	}
	if completionScripts[sha] {
		return f.completion(ctx, func(ctx context.Context) *redis.Cmd {
			return f.UniversalClient.Eval(ctx, script, keys, args...)
		})
	}
	if !dequeueShaped(keys) || !f.isDequeue(sha, keys) {
		return f.UniversalClient.Eval(ctx, script, keys, args...)
	}
	keys, args = f.rounds.rewrite(keys, args)
	call := dequeueCall{script: script, keys: keys, args: args}
	if sha == dequeueScriptSHA {
		call.sha = sha // asynq's EVAL after NOSCRIPT: the batcher may answer it
	}
	cmd := f.run(ctx, call)
	if f.hub != nil {
		cmd = f.observe(ctx, cmd, call)
	}
	f.rounds.advance(cmd.Err(), len(f.keys))
	return cmd
}

// isDequeue recognizes asynq's dequeue script by its SHA-1, or, should an
// asynq upgrade change the script, by its keys (with a warning).
func (f *fetchClient) isDequeue(sha string, keys []string) bool {
	if sha == dequeueScriptSHA {
		return true
	}
	if dequeueShaped(keys) {
		f.once("sha", slog.LevelWarn, "wake-ups: asynq's dequeue script is not the pinned v0.26.0 one; recognized by its keys",
			"sha", sha, "pinned", dequeueScriptSHA)
		return true
	}
	return false
}

// dequeueShaped reports whether keys are the dequeue script's: pending,
// paused, active and lease keys of one queue.
func dequeueShaped(keys []string) bool {
	return len(keys) == 4 && strings.HasSuffix(keys[0], "}:pending") && strings.HasSuffix(keys[1], "}:paused")
}

func scriptSHA(script string) string {
	sum := sha1.Sum([]byte(script))
	return hex.EncodeToString(sum[:])
}

func isNoScript(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") }

// observe tracks asynq's round over its queues. When the round's last queue
// comes back empty, it waits for a wake-up and answers with the round run
// again.
func (f *fetchClient) observe(ctx context.Context, cmd *redis.Cmd, call dequeueCall) *redis.Cmd {
	switch err := cmd.Err(); {
	case err == nil:
		f.found()
		f.round = f.round[:0]
		return cmd
	case err != redis.Nil:
		if !isNoScript(err) { // after NOSCRIPT asynq runs the same call by EVAL
			f.round = f.round[:0]
		}
		return cmd
	}
	key := call.keys[0]
	if !f.keys[key] {
		f.once("round", slog.LevelWarn, "wake-ups: asynq dequeued a queue not in worker.queues; pausing after each empty answer", "key", key)
		f.pause(unknownRoundPause)
		return cmd
	}
	for _, c := range f.round {
		if c.keys[0] == key { // a new round began
			f.round = f.round[:0]
			break
		}
	}
	f.round = append(f.round, call)
	if len(f.round) < len(f.keys) {
		return cmd
	}
	res := f.waitRerun(ctx, f.round)
	f.round = f.round[:0]
	if res != nil {
		return res
	}
	return cmd
}

// waitRerun waits for a wake-up and runs the round again; it returns nil
// when the wait ends without one, and asynq sees its queues empty. The wait
// is bounded by the fetcher's idle bound while a source is live, by the
// adaptive poll otherwise; the mode is read again after each wake-up, since
// it changes when the source comes or goes.
func (f *fetchClient) waitRerun(ctx context.Context, round []dequeueCall) *redis.Cmd {
	start := time.Now()
	for {
		live := f.hub.live.Load()
		d := f.idle
		switch {
		case !live:
			d = f.hub.pollWait(f.idle)
		case f.hub.source() == WakeupBlock:
			d = max(d, blockLook)
		}
		f.hub.enterWait()
		key, woke := f.hub.wait(f.halt, d-time.Since(start))
		f.hub.leaveWait()
		if !woke {
			f.timedOut, f.polled, f.woken = live, !live, false
			return nil
		}
		f.woken = true
		round = f.rounds.refresh(round)
		for _, c := range round {
			res := f.run(ctx, c)
			switch err := res.Err(); {
			case err == nil:
				f.found()
				return res
			case err != redis.Nil:
				return res
			}
		}
		if key != "" {
			f.mutePaused(ctx, round, key)
		}
	}
}

func (f *fetchClient) run(ctx context.Context, c dequeueCall) *redis.Cmd {
	if f.batch != nil && c.sha == dequeueScriptSHA && len(c.keys) == 4 && len(c.args) == 2 {
		return f.batch.take(ctx, c.keys, c.args, f.receipt)
	}
	if c.script != "" {
		return f.UniversalClient.Eval(ctx, c.script, c.keys, c.args...)
	}
	return f.UniversalClient.EvalSha(ctx, c.sha, c.keys, c.args...)
}

// found notes a task: polling stays fast (and wakes the other fetchers
// after an idle poll), a task that the safety poll found without a wake-up
// counts as a missed notification, and the first task after a blocking
// read's wake-up passes the wake-up on (see wakeHub.passOn).
func (f *fetchClient) found() {
	f.hub.lastFound.Store(time.Now().UnixNano())
	if f.timedOut && len(f.hub.tokens) == 0 {
		f.hub.missed()
	}
	if f.polled { // work after an idle poll: bring the other fetchers back
		f.hub.wakeAll()
	}
	if f.woken {
		f.hub.passOn()
	}
	f.timedOut, f.polled, f.woken = false, false, false
}

// mutePaused mutes the wake-ups of a queue that was woken but gave nothing
// because it is paused, so that pushes to a paused queue do not keep the
// fetcher busy; another consumer having taken the task is the other cause.
func (f *fetchClient) mutePaused(ctx context.Context, round []dequeueCall, key string) {
	for _, c := range round {
		if c.keys[0] != key {
			continue
		}
		if n, err := f.UniversalClient.Exists(ctx, c.keys[1]).Result(); err == nil && n > 0 {
			f.hub.mute(key, time.Now().Add(notifyWait))
		}
		return
	}
}

// pause sleeps d unless fetching stops.
func (f *fetchClient) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-f.halt:
	}
}

func (f *fetchClient) once(key string, level slog.Level, msg string, args ...any) {
	if _, seen := f.said.LoadOrStore(key, true); !seen {
		f.log.Log(context.Background(), level, msg, args...)
	}
}

var _ redis.UniversalClient = (*fetchClient)(nil)
