package quarantine

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/connerr"
)

// Headroom is what a task message may hold beyond its payload (type, ID,
// queue, options, headers) before the guard archives it unread: the msg
// size limit is worker.max_payload_bytes plus Headroom. A task within the
// limit whose payload alone exceeds worker.max_payload_bytes is archived by
// the worker's middleware after it is dequeued.
const Headroom = 64 << 10

// MinTransferRate is the slowest rate, in bytes per second, at which the
// queue pool's timeouts let the largest allowed message cross: 8 MiB/s, a
// loaded shared link (loopback on a loaded 2-core machine moved 20 MiB in
// 81 ms). TransferAllowance is what the queue pool adds to
// redis.read_timeout and redis.write_timeout.
const MinTransferRate = 8 << 20

// TransferAllowance is the time the largest allowed message (msgLimit
// bytes) needs at MinTransferRate, rounded up to a millisecond.
func TransferAllowance(msgLimit int64) time.Duration {
	d := time.Duration(msgLimit) * time.Second / MinTransferRate
	return d.Round(time.Millisecond) + time.Millisecond
}

// QueueAllowance is what the clients of asynq's scripts add to their read
// and write timeouts for a payload bound: the time the largest allowed
// message needs at MinTransferRate.
func QueueAllowance(maxPayloadBytes int) time.Duration {
	return TransferAllowance(MsgLimit(maxPayloadBytes))
}

// MsgLimit is the msg size limit for a payload bound.
func MsgLimit(maxPayloadBytes int) int64 { return int64(maxPayloadBytes) + Headroom }

// asynq v0.26.0's archive limits (internal/rdb): the archive keeps tasks 90
// days and at most 10,000 of them; stats keys live 90 days.
const (
	archiveDays    = 90
	maxArchiveSize = 10000
	statsTTL       = 90 * 24 * time.Hour
)

// Options configure a Guard.
type Options struct {
	// MaxPayloadBytes is worker.max_payload_bytes; 0 means 1 MiB.
	MaxPayloadBytes int
	// Logger receives one WARN line per task set aside or archived, with
	// component=queue (default slog.Default()).
	Logger *slog.Logger
}

// Guard guards asynq's servers against poison tasks. Its Client and Pipe
// wrap the clients an asynq server runs on; its scan (Run, ScanQueue) finds
// poison anywhere in a queue. It is safe for concurrent use.
type Guard struct {
	limit int64
	log   *slog.Logger
	now   func() time.Time
	said  sync.Map

	kick   chan struct{} // a scan is wanted now (a recovery failed)
	tokens atomic.Uint64 // the last batched dequeue's token
	mu     sync.Mutex
	counts map[string]int64 // quarantined tasks by queue, as last read
	// recounts counts, by queue, the sizes read right after a set-aside
	// (counted): a periodic read begun before one of them is older and is
	// dropped (refreshCounts).
	recounts map[string]uint64
	totals   map[[2]string]uint64 // tasks set aside or archived by queue and reason
}

// New returns a Guard.
func New(opts Options) *Guard {
	if opts.MaxPayloadBytes <= 0 {
		opts.MaxPayloadBytes = 1 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Guard{
		limit:  MsgLimit(opts.MaxPayloadBytes),
		log:    opts.Logger.With("component", "queue"),
		now:    time.Now,
		kick:   make(chan struct{}, 1),
		counts: map[string]int64{}, recounts: map[string]uint64{},
		totals: map[[2]string]uint64{},
	}
}

// Limit is the msg size limit in bytes.
func (g *Guard) Limit() int64 { return g.limit }

// Client wraps c, an asynq server's client: asynq's dequeue and its listing
// of lease-expired tasks run as guarded scripts; every other command
// passes through.
func (g *Guard) Client(c redis.UniversalClient) redis.UniversalClient {
	return &guardedClient{UniversalClient: c, g: g}
}

// Pipe wraps an autopipeliner the same way; nil stays nil.
func (g *Guard) Pipe(c redis.Cmdable) redis.Cmdable {
	if c == nil {
		return nil
	}
	return &guardedPipe{Cmdable: c, g: g}
}

type guardedClient struct {
	redis.UniversalClient
	g *Guard
}

func (c *guardedClient) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	return c.g.run(ctx, c.UniversalClient, sha, keys, args, func() *redis.Cmd {
		return c.UniversalClient.EvalSha(ctx, sha, keys, args...)
	})
}

func (c *guardedClient) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return c.g.run(ctx, c.UniversalClient, scriptSHA(script), keys, args, func() *redis.Cmd {
		return c.UniversalClient.Eval(ctx, script, keys, args...)
	})
}

type guardedPipe struct {
	redis.Cmdable
	g *Guard
}

func (c *guardedPipe) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	return c.g.run(ctx, c.Cmdable, sha, keys, args, func() *redis.Cmd { return c.Cmdable.EvalSha(ctx, sha, keys, args...) })
}

func (c *guardedPipe) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return c.g.run(ctx, c.Cmdable, scriptSHA(script), keys, args, func() *redis.Cmd {
		return c.Cmdable.Eval(ctx, script, keys, args...)
	})
}

// run runs the guarded form of the script sha on c when there is one, else
// passes the call through.
func (g *Guard) run(ctx context.Context, c scripter, sha string, keys []string, args []any, pass func() *redis.Cmd) *redis.Cmd {
	if cmd, ok := g.intercept(ctx, c, sha, keys, args); ok {
		return cmd
	}
	return pass()
}

func scriptSHA(script string) string {
	sum := sha1.Sum([]byte(script))
	return hex.EncodeToString(sum[:])
}

// scripter is what go-redis' Script.Run needs.
type scripter interface {
	Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd
	EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd
	EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd
	EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd
	ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd
	ScriptLoad(ctx context.Context, script string) *redis.StringCmd
}

// intercept runs the guarded form of asynq's dequeue or lease listing.
func (g *Guard) intercept(ctx context.Context, c scripter, sha string, keys []string, args []any) (*redis.Cmd, bool) {
	switch {
	case sha == dequeueSHA && len(keys) == 4 && len(args) == 2:
		return g.dequeue(ctx, c, keys, args), true
	case sha == listLeaseExpiredSHA && len(keys) == 1 && len(args) == 2:
		return g.listLeaseExpired(ctx, c, keys, args), true
	case len(keys) == 4 && strings.HasSuffix(keys[0], "}:pending") && strings.HasSuffix(keys[1], "}:paused"):
		g.once("sha", slog.LevelWarn, "queue guard: asynq's dequeue script is not the pinned v0.26.0 one; "+
			"poison tasks are set aside by the periodic scan only", "sha", sha, "pinned", dequeueSHA)
	}
	return nil, false
}

// archiveArgs are the archive settings the scripts take (see archcfg).
func (g *Guard) archiveArgs() []any {
	now := g.now()
	return []any{now.Unix(), now.UTC().Format("2006-01-02"), now.Add(statsTTL).Unix(),
		now.AddDate(0, 0, -archiveDays).Unix(), maxArchiveSize}
}

// maxSetAsideRounds bounds the calls of one dequeue that only set tasks
// aside (8 each) before asynq is told the queue is empty.
const maxSetAsideRounds = 16

func (g *Guard) dequeue(ctx context.Context, c scripter, keys []string, args []any) *redis.Cmd {
	queue := QueueOf(keys[0])
	argv := append([]any{args[0], args[1], g.limit}, g.archiveArgs()...)
	for range maxSetAsideRounds {
		res, err := guardedDequeue.Run(ctx, c, keys, argv...).Slice()
		if err != nil {
			return redis.NewCmdResult(nil, err)
		}
		if len(res) != 4 {
			return redis.NewCmdResult(nil, fmt.Errorf("queue guard: unexpected reply of the dequeue script: %d items", len(res)))
		}
		g.archiveAll(ctx, c, queue, "pending", res[2])
		g.report(ctx, c, queue, ReasonMissing, "pending", res[3])
		id, _ := res[0].(string)
		msg, _ := res[1].(string)
		if id == "" {
			continue // set tasks aside; try again
		}
		if reason, detail := check([]byte(msg), id, queue); reason != "" {
			g.setAside(ctx, c, queue, id, reason, detail, "pending", int64(len(msg)))
			continue
		}
		return redis.NewCmdResult(msg, nil)
	}
	return redis.NewCmdResult(nil, redis.Nil)
}

// Taken is a task that DequeueBatch took: its ID and its msg.
type Taken struct{ ID, Msg string }

// DequeueBatch is the guarded dequeue of up to n tasks of one queue in one
// round trip, with asynq's dequeue keys and arguments (pending, paused,
// active and lease keys; lease expiry and task key prefix). Each task taken
// is active with that lease, as asynq's dequeue leaves it; poison is set
// aside as by the guarded dequeue. The msgs together hold at most the msg
// size limit in bytes, or one msg. It returns redis.Nil when the queue is
// paused or has nothing to give.
//
// owner, when not empty, names the caller's receipt (one per caller that
// makes one call at a time): each call records there what it took, and a
// call whose reply timed out is answered from it (see claim), so that a
// Redis stall does not leave a batch leased to nobody until lease recovery.
func (g *Guard) DequeueBatch(ctx context.Context, c scripter, keys []string, args []any, n int, owner string) ([]Taken, error) {
	queue := QueueOf(keys[0])
	receipt, token := "", ""
	if owner != "" {
		receipt, token = receiptKey(queue, owner), g.nextToken()
	}
	argv := append(append([]any{args[0], args[1], g.limit}, g.archiveArgs()...), max(n, 1), g.limit,
		receipt, token, receiptTTL.Milliseconds())
	for range maxSetAsideRounds {
		res, err := guardedDequeueBatch.Run(ctx, c, keys, argv...).Slice()
		if err != nil && receipt != "" && ctx.Err() == nil && connerr.TimedOut(err) {
			res, err = g.claim(ctx, c, queue, []any{args[0], args[1]}, receipt, token, err)
		}
		if err != nil {
			return nil, err
		}
		if len(res) != 3 {
			return nil, fmt.Errorf("queue guard: unexpected reply of the batched dequeue script: %d items", len(res))
		}
		g.archiveAll(ctx, c, queue, "pending", res[1])
		g.report(ctx, c, queue, ReasonMissing, "pending", res[2])
		pairs, _ := res[0].([]any)
		out := make([]Taken, 0, len(pairs)/2)
		for i := 0; i+1 < len(pairs); i += 2 {
			id, _ := pairs[i].(string)
			msg, _ := pairs[i+1].(string)
			if reason, detail := check([]byte(msg), id, queue); reason != "" {
				g.setAside(ctx, c, queue, id, reason, detail, "pending", int64(len(msg)))
				continue
			}
			out = append(out, Taken{ID: id, Msg: msg})
		}
		if len(out) > 0 {
			return out, nil
		}
		if receipt != "" { // the next call needs a token of its own
			token = g.nextToken()
			argv[len(argv)-2] = token
		}
	}
	return nil, redis.Nil
}

// receiptTTL is how long a batch's receipt lives: a claim comes within
// seconds of its call, and asynq's lease is 30 s.
const receiptTTL = 30 * time.Second

// receiptKey is the receipt of owner for queue, in the queue's hash slot.
func receiptKey(queue, owner string) string {
	return "taskhost:receipt:{" + queue + "}:" + owner
}

// claim answers a batched dequeue whose reply timed out (lost, with the
// error err): from the receipt when the call ran, as a reply of the batch
// script with the tasks it took; with err when it did not (it then never
// will). args are asynq's lease expiry and task key prefix. A claim whose
// own reply times out is made again, up to lostReplyAttempts calls; then
// the tasks, if any, wait for lease recovery, as before.
func (g *Guard) claim(ctx context.Context, c scripter, queue string, args []any, receipt, token string, err error) ([]any, error) {
	keys := []string{receipt, queuePrefix(queue) + "lease"}
	for attempt := 1; ; attempt++ {
		res, cerr := claimBatch.Run(ctx, c, keys, token, args[0], args[1], receiptTTL.Milliseconds()).Slice()
		switch {
		case cerr == redis.Nil:
			return nil, err // the call never ran, and now never will
		case cerr == nil:
			return []any{res, []any{}, []any{}}, nil
		case ctx.Err() == nil && connerr.TimedOut(cerr) && attempt < lostReplyAttempts:
			continue
		case ctx.Err() != nil || !connerr.TimedOut(cerr):
			err = cerr
		}
		g.log.Warn("batched dequeue: a reply was lost and the batch could not be claimed; lease recovery will return its tasks",
			"queue", queue, "error", err)
		return nil, err
	}
}

// nextToken names one batched dequeue call; tokens never read "void".
func (g *Guard) nextToken() string { return "t" + strconv.FormatUint(g.tokens.Add(1), 36) }

func (g *Guard) listLeaseExpired(ctx context.Context, c scripter, keys []string, args []any) *redis.Cmd {
	queue := QueueOf(keys[0])
	argv := append(append([]any{args[0], args[1], g.limit}, g.archiveArgs()...), g.limit)
	res, err := guardedListLeaseExpired.Run(ctx, c, keys, argv...).Slice()
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			g.Kick() // the scan looks at what the listing could not
		}
		return redis.NewCmdResult(nil, err)
	}
	if len(res) != 3 {
		return redis.NewCmdResult(nil, fmt.Errorf("queue guard: unexpected reply of the lease script: %d items", len(res)))
	}
	g.archiveAll(ctx, c, queue, "active", res[1])
	g.report(ctx, c, queue, ReasonMissing, "active", res[2])
	pairs, _ := res[0].([]any)
	out := make([]any, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		id, _ := pairs[i].(string)
		msg, _ := pairs[i+1].(string)
		if reason, detail := check([]byte(msg), id, queue); reason != "" {
			g.setAside(ctx, c, queue, id, reason, detail, "active", int64(len(msg)))
			continue
		}
		out = append(out, msg)
	}
	return redis.NewCmdResult(out, nil)
}

// setAside moves one task to the quarantine, if its msg still has the
// length seen, and reports it.
func (g *Guard) setAside(ctx context.Context, c scripter, queue, id, reason, detail, from string, seen int64) bool {
	n, err := moveAside.Run(ctx, c, []string{queuePrefix(queue)}, id, reason+": "+detail, g.now().Unix(), seen).Int()
	if err != nil {
		g.log.Warn("queue guard: could not set a poison task aside", "queue", queue, "task_id", id,
			"reason", reason, "error", err)
		return false
	}
	if n > 0 {
		g.told(queue, reason, from, id, detail)
		g.counted(queue, int64(n))
	}
	return n > 0
}

// report logs and counts the tasks a script set aside because their hash
// has no msg.
func (g *Guard) report(ctx context.Context, c scripter, queue, reason, from string, ids any) {
	list, _ := ids.([]any)
	for _, v := range list {
		if id, ok := v.(string); ok {
			g.told(queue, reason, from, id, "the hash has no msg")
		}
	}
	if len(list) > 0 {
		if n, err := quarantineSize.Run(ctx, c, []string{queuePrefix(queue)}).Int64(); err == nil {
			g.counted(queue, n)
		}
	}
}

// counted records the size of queue's quarantine, read after a set-aside.
func (g *Guard) counted(queue string, n int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.counts[queue] = n
	g.recounts[queue]++
}

// archiveAll archives the oversized tasks a script found (ids, a reply's
// list of task IDs), each in a call of its own.
func (g *Guard) archiveAll(ctx context.Context, c scripter, queue, from string, ids any) {
	list, _ := ids.([]any)
	for _, v := range list {
		if id, ok := v.(string); ok {
			g.archive(ctx, c, queue, id, from)
		}
	}
}

// lostReplyAttempts bounds the calls made after a reply timed out, to learn
// what the call did (an archive, a batched dequeue).
const lostReplyAttempts = 5

// archive archives one oversized task of queue, unread, and reports it. It
// is the one place where taskhost archives a task: archiving copies the
// task's whole msg, which on a loaded server can take longer than the
// pool's read timeout, so it runs in a call that carries nothing else, and
// a call whose reply timed out (Redis may still have run it) is made again:
// the script answers "archived already", which counts as this call's. A
// task left where it was (Redis down) is archived by the next dequeue,
// lease recovery or scan that meets it.
func (g *Guard) archive(ctx context.Context, c scripter, queue, id, from string) bool {
	keys := []string{queuePrefix(queue)}
	for attempt := range lostReplyAttempts {
		n, err := archiveOversized.Run(ctx, c, keys, append([]any{id, g.limit}, g.archiveArgs()...)...).Int()
		switch {
		case err == nil && (n == 1 || n == 2 && attempt > 0):
			g.told(queue, ReasonOversized, from, id, fmt.Sprintf("msg larger than %d bytes", g.limit))
			return true
		case err == nil:
			return false
		case ctx.Err() == nil && connerr.TimedOut(err):
			continue
		}
		g.log.Warn("queue guard: could not archive an oversized task", "queue", queue, "task_id", id, "error", err)
		return false
	}
	g.log.Warn("queue guard: could not archive an oversized task", "queue", queue, "task_id", id,
		"error", "every reply timed out", "attempts", lostReplyAttempts)
	return false
}

func (g *Guard) told(queue, reason, from, id, detail string) {
	msg := "poison task set aside in the quarantine; list it with worker doctor"
	g.mu.Lock()
	if reason == ReasonOversized {
		msg = "oversized task archived without being read"
	}
	g.totals[[2]string{queue, reason}]++
	g.mu.Unlock()
	g.log.Warn(msg, "queue", queue, "task_id", id, "reason", reason, "detail", detail, "state", from)
}

// Totals returns how many tasks this process set aside or archived, by
// queue and reason ({queue, reason}).
func (g *Guard) Totals() map[[2]string]uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[[2]string]uint64, len(g.totals))
	for k, v := range g.totals {
		out[k] = v
	}
	return out
}

// Kick asks the scan loop for a scan now; it never blocks.
func (g *Guard) Kick() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

func (g *Guard) once(key string, level slog.Level, msg string, args ...any) {
	if _, seen := g.said.LoadOrStore(key, true); !seen {
		g.log.Log(context.Background(), level, msg, args...)
	}
}

// QueueOf returns q from asynq's key "asynq:{q}:...".
func QueueOf(key string) string {
	start := strings.IndexByte(key, '{')
	end := strings.Index(key, "}:")
	if start < 0 || end < start {
		return ""
	}
	return key[start+1 : end]
}

// queuePrefix is asynq's key prefix of queue q.
func queuePrefix(q string) string { return "asynq:{" + q + "}:" }

var (
	_ redis.UniversalClient = (*guardedClient)(nil)
	_ redis.Cmdable         = (*guardedPipe)(nil)
)
