package taskhost

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskhost/taskhost/internal/connerr"
)

// Wake-ups replace asynq's idle sleep. asynq v0.26.0's processor runs its
// dequeue script once per queue; when every queue comes back empty it sleeps
// TaskCheckInterval/2 + rand(TaskCheckInterval), 0.5-1.5 s by default, so a
// task enqueued into an idle worker waits that long to start.
//
// Each asynq server of the worker runs on its own fetchClient, which sees the
// dequeue script's calls (pinned by the script's SHA-1). When a whole round of
// them comes back empty, the fetchClient holds the last call and waits for a
// wake-up, at most notifyWait; on a wake-up it runs the round again, in
// asynq's order and with asynq's arguments, and returns what that finds as
// the answer to the held call. asynq takes the task from the message itself,
// so a task of another queue than the held call's is handled as usual.
//
// Every task that becomes pending arrives by LPUSH or RPUSH (enqueue,
// forwarder, requeue). Wake-ups come from one of two sources:
//
//   - blocking reads on the pending lists (wakeblock.go), the default
//     (worker.wakeup: auto): they need no server config;
//   - Redis keyspace notifications on the pending lists (worker.wakeup:
//     notify, opt-in), which the wakeHub turns on with CONFIG SET, changing
//     the server's config, and verifies with a probe list. Where they are
//     not available (CONFIG refused and not preset, Redis Cluster,
//     miniredis) it uses blocking reads instead.
//
// While the source is not live (Redis down or restarting, the commands
// refused, worker.wakeup: poll), the fetchClient polls adaptively: every
// pollMin while tasks flow, slowing to its idle bound as the worker stays
// idle (see pollWait). asynq's own sleep shrinks to asynqRecheck, because
// the waiting happens here.

// dequeueScriptSHA is the SHA-1 of asynq v0.26.0's dequeue script
// (internal/rdb/rdb.go, dequeueCmd). TestDequeueScriptPinned fails when an
// asynq upgrade changes it.
const dequeueScriptSHA = "a8153319360adc71cdc370107f8ab9786f204765"

const (
	// notifyWait bounds an idle fetcher's wait; it is how often an idle
	// worker looks at its queues (as often as asynq's default poll).
	notifyWait = time.Second
	// notifyWaitExtra is the same bound for the extra fetchers: one fetcher
	// looking every second is enough, since a push (or, polling, the first
	// fetcher's find) wakes them. It stays well under asynq's 30 s lease:
	// a round run again after the wait uses the lease deadline asynq
	// computed before it, which the heartbeat extends every 5 s.
	notifyWaitExtra = 15 * time.Second
	// pollMin is the adaptive poll's period while tasks flow.
	pollMin = 5 * time.Millisecond
	// asynqRecheck is the TaskCheckInterval given to asynq when wake-ups are
	// on: asynq sleeps 0.5-1.5 of it after an empty answer.
	asynqRecheck = time.Millisecond
	// unknownRoundPause is the wait after an empty answer that the
	// fetchClient cannot place in a round; it keeps a mismatch from
	// turning asynq's loop into a busy one.
	unknownRoundPause = 100 * time.Millisecond
	// probeWait bounds the wait for the probe's own notification.
	probeWait = time.Second
	// pubsubIdle is how long the subscription may stay silent before it is
	// pinged; a second silent period ends the session.
	pubsubIdle = 5 * time.Second
	// recheckEvery bounds how often missed wake-ups re-verify notifications.
	recheckEvery = 30 * time.Second
	// retryMin and retryMax bound the backoff between failed sessions
	// while Redis is up (it refuses the probe list: out of memory, ACL).
	retryMin = 250 * time.Millisecond
	retryMax = 30 * time.Second
	// gateIdle: once no fetcher has waited for this long (they all find
	// tasks: a drain), the hub unsubscribes from the pending lists, whose
	// every dequeue would otherwise send a notification; the first fetcher
	// to wait again subscribes anew.
	gateIdle = 500 * time.Millisecond
)

// Wake-up sources, as config worker.wakeup selects them and WakeupSource
// reports them.
const (
	WakeupAuto   = "auto"   // config: blocking reads, never changing the server's config
	WakeupBlock  = "block"  // blocking reads on the pending lists are live
	WakeupNotify = "notify" // config: keyspace notifications, set with CONFIG SET; reported when live
	WakeupPoll   = "poll"   // adaptive polling: configured, or the live source is unavailable
	WakeupOff    = "off"    // asynq's own polling (TaskCheckInterval 1 s)
)

// pushEvents are the keyspace events that add to a list.
var pushEvents = map[string]bool{"lpush": true, "rpush": true, "linsert": true}

// wakeHub turns blocking reads or keyspace notifications into wake-up
// tokens for the fetchers. A token names the pending list that got a push;
// an empty name wakes a fetcher to look at every queue.
type wakeHub struct {
	log   *slog.Logger
	rdb   redis.UniversalClient // the raw queue client
	ready func() bool
	await func(ctx context.Context) bool

	mode      string            // WakeupAuto or WakeupNotify
	pollOnly  string            // why no source is tried; "" tries mode's
	blk       *blockSource      // nil without a blocking client
	db        int               // database of the keyspace channels
	channels  map[string]string // keyspace channel -> pending key
	probeKey  string
	probeChan string

	// live is set while a source delivers wake-ups; liveSrc names it.
	live    atomic.Bool
	liveSrc atomic.Pointer[string]
	lives   atomic.Int64 // times the wake-ups became live
	tokens  chan string
	// The subscription to the pending lists is gated on fetchers waiting
	// (gateIdle): subscribed says it is confirmed, waiting and lastWait
	// (unix nanos) tell the hub whether fetchers wait. subSent (under mu)
	// marks a SUBSCRIBE that awaits its confirmation.
	queueChans []string
	subscribed atomic.Bool
	waiting    atomic.Int32
	lastWait   atomic.Int64
	subSent    bool
	recheck    chan struct{}
	misses     atomic.Int32
	// lastFound is when a fetcher last got a task (unix nanos); the poll
	// without notifications is fast while tasks flow.
	lastFound atomic.Int64
	lastChk   atomic.Int64 // unix nanos of the last recheck request

	mu      sync.Mutex
	muted   map[string]time.Time // pending key -> ignore pushes until
	ps      *redis.PubSub
	said    map[string]bool
	started bool
	stopped bool

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// hubConfig configures a wakeHub.
type hubConfig struct {
	rdb redis.UniversalClient // the raw queue client
	// block builds, at start, a client of its own for the blocking reads,
	// which the hub closes at stop; nil: no blocking reads.
	block func() (redis.UniversalClient, error)
	ready func() bool
	await func(ctx context.Context) bool
	// mode is WakeupAuto (blocking reads) or WakeupNotify (keyspace
	// notifications, then blocking reads where they are unavailable).
	mode     string
	queues   []string
	fetchers int    // sizes the token buffer
	pollOnly string // with a reason, the hub tries no source and the fetchers poll
	log      *slog.Logger
}

// newWakeHub builds a hub for the pending keys of c.queues.
func newWakeHub(c hubConfig) *wakeHub {
	rdb, ready, await, log, pollOnly, queues := c.rdb, c.ready, c.await, c.log, c.pollOnly, c.queues
	ctx, cancel := context.WithCancel(context.Background())
	h := &wakeHub{
		log: log, rdb: rdb, ready: ready, await: await, mode: c.mode,
		tokens:   make(chan string, max(c.fetchers, 1)),
		recheck:  make(chan struct{}, 1),
		muted:    map[string]time.Time{},
		said:     map[string]bool{},
		channels: map[string]string{},
		ctx:      ctx, cancel: cancel,
		done: make(chan struct{}),
	}
	h.pollOnly = pollOnly
	type optioner interface{ Options() *redis.Options }
	if o, ok := rdb.(optioner); ok {
		h.db = o.Options().DB
	} else if h.mode == WakeupNotify {
		h.mode = WakeupAuto
		log.Info("wake-ups: worker.wakeup is notify, but keyspace notifications are per node here; using blocking reads")
	}
	keys := make([]string, 0, len(queues))
	for _, q := range queues {
		keys = append(keys, pendingKey(q))
		h.channels[h.keyspace(pendingKey(q))] = pendingKey(q)
		h.queueChans = append(h.queueChans, h.keyspace(pendingKey(q)))
	}
	if c.block != nil {
		h.blk = newBlockSource(h, c.block, keys)
	}
	if h.pollOnly == "" && h.blk == nil && h.mode != WakeupNotify {
		h.pollOnly = "no client for blocking reads"
	}
	h.probeKey = "taskhost:wakeup:probe:" + rand.Text()
	h.probeChan = h.keyspace(h.probeKey)
	return h
}

// pendingKey is asynq's pending list of queue q (base.PendingKey).
func pendingKey(q string) string { return "asynq:{" + q + "}:pending" }

func (h *wakeHub) keyspace(key string) string {
	return "__keyspace@" + strconv.Itoa(h.db) + "__:" + key
}

// start runs the source; without one it only logs the mode.
func (h *wakeHub) start() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started || h.stopped {
		return
	}
	h.started = true
	if h.pollOnly == "" && h.blk != nil {
		if err := h.blk.dial(); err != nil {
			h.blk = nil
			if h.mode != WakeupNotify {
				h.pollOnly = "no client for blocking reads: " + err.Error()
			}
		}
	}
	if h.pollOnly != "" {
		close(h.done)
		h.log.Info("wake-ups: idle workers poll adaptively (5 ms while tasks flow, up to 1 s when idle)", "reason", h.pollOnly)
		return
	}
	go func() {
		defer close(h.done)
		if h.mode == WakeupNotify {
			h.runNotify()
			return
		}
		h.blk.run(h.ctx)
	}()
}

// stop ends the subscriber and the fetchers' waits.
func (h *wakeHub) stop() {
	h.mu.Lock()
	started := h.started
	if h.stopped {
		h.mu.Unlock()
		if started {
			<-h.done
		}
		return
	}
	h.stopped = true
	ps := h.ps
	h.mu.Unlock()
	h.cancel()
	if ps != nil {
		_ = ps.Close()
	}
	if h.blk != nil && h.blk.rdb != nil {
		_ = h.blk.rdb.Close() // ends the blocking calls in flight
	}
	if started {
		<-h.done
	}
}

// source reports the live wake-up source, or WakeupPoll.
func (h *wakeHub) source() string {
	if h.live.Load() {
		if s := h.liveSrc.Load(); s != nil {
			return *s
		}
	}
	return WakeupPoll
}

// setLive records whether src delivers wake-ups. Losing them wakes the
// waiting fetchers, which look again and poll until they are back.
func (h *wakeHub) setLive(src string, on bool) {
	if on {
		h.liveSrc.Store(&src)
		if !h.live.Swap(true) {
			h.lives.Add(1)
			h.say("live:"+src, slog.LevelInfo, "wake-ups: "+sourceDescription[src], "queues", len(h.channels))
		}
		return
	}
	if h.live.Swap(false) {
		h.wakeAll()
	}
}

// sourceDescription says what each live source is, for the log.
var sourceDescription = map[string]string{
	WakeupBlock:  "blocking reads on the pending lists (no server config needed)",
	WakeupNotify: "Redis keyspace notifications on the pending lists",
}

// runNotify keeps a verified subscription while Redis is ready; without one
// the fetchers poll. Where Redis refuses notifications it hands over to the
// blocking reads for good.
func (h *wakeHub) runNotify() {
	backoff := retryMin
	for h.ctx.Err() == nil {
		if !h.await(h.ctx) {
			return
		}
		t0 := time.Now()
		err := h.session()
		h.setLive(WakeupNotify, false)
		if h.ctx.Err() != nil {
			return
		}
		if errors.Is(err, errNoNotify) {
			if h.blk != nil {
				h.blk.run(h.ctx)
				return
			}
			// Wait for a reconnect (perhaps to another server) or a recheck.
			h.idleUntilReconnect()
			continue
		}
		h.log.Debug("wake-ups: subscription ended; polling until it is back", "error", err)
		if time.Since(t0) > time.Minute {
			backoff = retryMin // it ran well; this is a new failure
		}
		h.sleep(backoff)
		backoff = min(2*backoff, retryMax)
	}
}

var (
	errNoNotify = errors.New("keyspace notifications unavailable")
	errRecheck  = errors.New("recheck requested")
)

// errConfigUnreachable wraps a CONFIG call that failed to reach Redis (it
// restarted or failed over meanwhile): a reason to retry the session, not a
// refusal of notifications.
type errConfigUnreachable struct{ err error }

func (e errConfigUnreachable) Error() string { return e.err.Error() }
func (e errConfigUnreachable) Unwrap() error { return e.err }

// session enables notifications, subscribes, proves with the probe list that
// notifications arrive, then delivers wake-ups until the connection fails or
// a recheck is asked for.
func (h *wakeHub) session() error {
	ctx := h.ctx
	cfgErr := h.enable(ctx)
	if _, ok := cfgErr.(errConfigUnreachable); ok {
		return cfgErr
	}
	chans := append(slices.Clone(h.queueChans), h.probeChan)
	ps := h.rdb.Subscribe(ctx)
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		_ = ps.Close()
		return context.Canceled
	}
	h.ps, h.subSent = ps, false
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.ps, h.subSent = nil, false
		h.subscribed.Store(false)
		h.mu.Unlock()
		_ = ps.Close()
	}()
	if err := ps.Subscribe(ctx, chans...); err != nil {
		return err
	}
	for range chans {
		if _, err := ps.ReceiveTimeout(ctx, subscribeConfirm); err != nil {
			return err
		}
	}
	if err := h.probe(ctx, ps); err != nil {
		if errors.Is(err, errNoNotify) {
			reason := "notifications did not arrive"
			if cfgErr != nil {
				reason = cfgErr.Error()
			}
			fallback := "idle workers poll adaptively (5 ms to 1 s) instead"
			if h.blk != nil {
				fallback = "using blocking reads instead"
			}
			h.say("no-notify:"+reason, slog.LevelWarn,
				"wake-ups: Redis keyspace notifications are unavailable (worker.wakeup: notify); "+fallback+". "+
					"Allow CONFIG SET or set notify-keyspace-events to include K and l (or A) to use them",
				"reason", reason)
		}
		return err
	}
	h.subscribed.Store(true)
	h.setLive(WakeupNotify, true)
	h.misses.Store(0)
	h.wakeAll() // pushes during the set-up may have gone unseen
	silent := false
	confirmed := len(h.queueChans)
	for {
		select {
		case <-h.recheck:
			return errRecheck
		default:
		}
		msg, err := ps.ReceiveTimeout(ctx, pubsubIdle)
		if err != nil {
			if isTimeout(err) && !silent {
				silent = true
				if err := ps.Ping(ctx); err != nil {
					return err
				}
				h.gate(ps, &confirmed)
				continue
			}
			return err
		}
		silent = false
		switch m := msg.(type) {
		case *redis.Message:
			h.dispatch(m)
		case *redis.Subscription:
			if _, ok := h.channels[m.Channel]; ok && m.Kind == "subscribe" {
				if confirmed++; confirmed >= len(h.queueChans) {
					h.mu.Lock()
					h.subSent = false
					h.subscribed.Store(true)
					h.mu.Unlock()
					h.wakeAll() // pushes before the subscription went unseen
				}
			}
		}
		h.gate(ps, &confirmed)
	}
}

// gate unsubscribes from the pending lists when no fetcher has waited for
// gateIdle. It decides under mu, after marking the subscription gone, so
// that a fetcher starting to wait either keeps it or subscribes anew after
// the UNSUBSCRIBE (see enterWait).
func (h *wakeHub) gate(ps *redis.PubSub, confirmed *int) {
	if !h.subscribed.Load() || h.waiting.Load() > 0 || time.Now().UnixNano()-h.lastWait.Load() < int64(gateIdle) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subscribed.Store(false)
	if h.waiting.Load() > 0 || time.Now().UnixNano()-h.lastWait.Load() < int64(gateIdle) {
		h.subscribed.Store(true)
		return
	}
	*confirmed = 0
	if err := ps.Unsubscribe(h.ctx, h.queueChans...); err != nil {
		h.log.Debug("wake-ups: unsubscribe", "error", err)
	}
}

// enterWait counts a fetcher in: it arms the blockers, and subscribes to
// the pending lists if the hub had left them (the confirmation wakes the
// fetchers to look again).
func (h *wakeHub) enterWait() {
	h.waiting.Add(1)
	h.lastWait.Store(time.Now().UnixNano())
	if h.blk != nil {
		h.blk.armed()
	}
	if h.subscribed.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ps == nil || h.subSent || h.subscribed.Load() {
		return
	}
	if err := h.ps.Subscribe(h.ctx, h.queueChans...); err != nil {
		h.log.Debug("wake-ups: subscribe", "error", err)
		return
	}
	h.subSent = true
}

// leaveWait counts a fetcher out.
func (h *wakeHub) leaveWait() {
	h.lastWait.Store(time.Now().UnixNano())
	h.waiting.Add(-1)
}

// enable makes sure notify-keyspace-events includes K (keyspace channels)
// and l (list commands), adding them to whatever is set. It returns why it
// could not; notifications may still work when an operator preset them.
func (h *wakeHub) enable(ctx context.Context) error {
	cur, err := h.rdb.ConfigGet(ctx, "notify-keyspace-events").Result()
	if connerr.Down(err) {
		return errConfigUnreachable{fmt.Errorf("CONFIG GET notify-keyspace-events: %w", err)}
	}
	if err != nil {
		return errors.New("CONFIG GET notify-keyspace-events: " + err.Error())
	}
	flags := cur["notify-keyspace-events"]
	if hasNotifyFlags(flags) {
		return nil
	}
	want := mergeNotifyFlags(flags)
	if err := h.rdb.ConfigSet(ctx, "notify-keyspace-events", want).Err(); connerr.Down(err) {
		return errConfigUnreachable{fmt.Errorf("CONFIG SET notify-keyspace-events: %w", err)}
	} else if err != nil {
		return errors.New("CONFIG SET notify-keyspace-events " + want + ": " + err.Error())
	}
	h.say("config-set:"+want, slog.LevelInfo, "wake-ups: set notify-keyspace-events", "from", flags, "to", want)
	return nil
}

// hasNotifyFlags reports whether flags publish list events on keyspace
// channels.
func hasNotifyFlags(flags string) bool {
	return strings.Contains(flags, "K") && (strings.Contains(flags, "l") || strings.Contains(flags, "A"))
}

// mergeNotifyFlags adds K and l to flags, keeping every flag already set.
func mergeNotifyFlags(flags string) string {
	for _, f := range []string{"K", "l"} {
		if !strings.Contains(flags, f) && !(f == "l" && strings.Contains(flags, "A")) {
			flags += f
		}
	}
	return flags
}

// probe pushes to and deletes the probe list and waits for the push's
// notification, delivering queue notifications that arrive meanwhile.
func (h *wakeHub) probe(ctx context.Context, ps *redis.PubSub) error {
	pipe := h.rdb.Pipeline()
	pipe.LPush(ctx, h.probeKey, "1")
	pipe.Del(ctx, h.probeKey)
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	deadline := time.Now().Add(probeWait)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return errNoNotify
		}
		msg, err := ps.ReceiveTimeout(ctx, left)
		if err != nil {
			if isTimeout(err) {
				return errNoNotify
			}
			return err
		}
		m, ok := msg.(*redis.Message)
		if !ok {
			continue
		}
		if m.Channel == h.probeChan {
			return nil
		}
		h.dispatch(m)
	}
}

// dispatch turns a push on a pending list into a token for one fetcher.
func (h *wakeHub) dispatch(m *redis.Message) {
	key, ok := h.channels[m.Channel]
	if !ok || !pushEvents[m.Payload] {
		return
	}
	h.wake(key)
}

// wake hands one fetcher a token for the pending list key, unless the list
// is muted.
func (h *wakeHub) wake(key string) {
	if h.isMuted(key) {
		return
	}
	select {
	case h.tokens <- key:
	default: // every fetcher already has a token waiting
	}
}

// passOn wakes one more waiting fetcher after a fetcher woken by a blocking
// read found a task. A blocking read's reply stands for every task in the
// list, where a notification stands for one push: the next fetcher looks
// for a second task (and passes on in turn if it finds one), or, finding
// none, starts to wait again, which re-arms the blockers. Without it, a
// burst into a worker whose woken fetcher has no free slot would wait for
// the other fetchers' idle bound.
func (h *wakeHub) passOn() {
	if h.source() != WakeupBlock || h.waiting.Load() == 0 {
		return
	}
	select {
	case h.tokens <- "":
	default:
	}
}

// wakeAll hands every fetcher a token for all queues.
func (h *wakeHub) wakeAll() {
	for range cap(h.tokens) {
		select {
		case h.tokens <- "":
		default:
			return
		}
	}
}

// wait blocks until a token arrives (returning its pending key, true), the
// deadline passes or halt closes (false).
func (h *wakeHub) wait(halt <-chan struct{}, d time.Duration) (string, bool) {
	if d <= 0 {
		return "", false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case key := <-h.tokens:
		return key, true
	case <-t.C:
	case <-halt:
	case <-h.ctx.Done():
	}
	return "", false
}

// pollWait is the wait of an idle fetcher without notifications: half the
// time since any fetcher last got a task, from pollMin up to limit (the
// fetcher's idle bound). Fast while work flows, slow when idle.
func (h *wakeHub) pollWait(limit time.Duration) time.Duration {
	since := time.Duration(time.Now().UnixNano() - h.lastFound.Load())
	return min(max(since/2, pollMin), limit)
}

// mutedUntil is when the mute of key ends; zero when it is not muted.
func (h *wakeHub) mutedUntil(key string) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	until, ok := h.muted[key]
	if !ok || time.Now().After(until) {
		delete(h.muted, key)
		return time.Time{}
	}
	return until
}

// mute ignores pushes to key until until (a paused queue).
func (h *wakeHub) mute(key string, until time.Time) {
	h.mu.Lock()
	h.muted[key] = until
	h.mu.Unlock()
}

func (h *wakeHub) isMuted(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	until, ok := h.muted[key]
	if ok && time.Now().After(until) {
		delete(h.muted, key)
		return false
	}
	return ok
}

// missed records a task found by the safety poll that no notification
// announced; a few in a row re-verify notifications (at most every
// recheckEvery), for instance after an operator changed the config.
func (h *wakeHub) missed() {
	if h.source() != WakeupNotify || h.misses.Add(1) < 3 {
		return
	}
	now := time.Now().UnixNano()
	last := h.lastChk.Load()
	if now-last < int64(recheckEvery) || !h.lastChk.CompareAndSwap(last, now) {
		return
	}
	h.misses.Store(0)
	select {
	case h.recheck <- struct{}{}:
	default:
	}
}

// idleUntilReconnect waits, without notifications, until Redis has been
// away and back (a new server may allow them) or a recheck is asked for.
func (h *wakeHub) idleUntilReconnect() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	wasDown := false
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-h.recheck:
			return
		case <-t.C:
			up := h.ready()
			if wasDown && up {
				return
			}
			wasDown = wasDown || !up
		}
	}
}

func (h *wakeHub) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-h.ctx.Done():
	}
}

// say logs msg once per key.
func (h *wakeHub) say(key string, level slog.Level, msg string, args ...any) {
	h.mu.Lock()
	seen := h.said[key]
	h.said[key] = true
	h.mu.Unlock()
	if seen {
		level = slog.LevelDebug
	}
	h.log.Log(context.Background(), level, msg, args...)
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// WakeupSource reports how idle fetchers learn of new tasks: "block"
// (blocking reads on the pending lists, the default), "notify" (Redis
// keyspace notifications, worker.wakeup: notify), "poll" (adaptive polling:
// configured, or while the source is unavailable) or "off" (asynq's own
// polling, worker.wakeup: off).
func (r *Runtime) WakeupSource() string {
	if r.queue.hub == nil {
		return WakeupOff
	}
	return r.queue.hub.source()
}
