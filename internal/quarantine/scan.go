package quarantine

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// Finding is one poison task that a scan found.
type Finding struct {
	Queue  string
	ID     string
	State  string // the asynq state it was found in: pending, active, scheduled, retry, archived, completed
	Reason string // ReasonMissing, ReasonUndecodable, ReasonIncomplete or ReasonOversized
	Detail string
	Size   int64 // the msg's length in bytes; -1 when the hash is missing
	// Fixed is true when the scan moved it aside (or archived it).
	Fixed bool
}

// scanStates are asynq's per-queue state lists and sets, in scan order.
var scanStates = []struct {
	name string
	list bool
}{{"pending", true}, {"active", true}, {"scheduled", false}, {"retry", false}, {"archived", false}, {"completed", false}}

// scanChunk is how many task IDs one step of a scan reads at once.
const scanChunk = 200

// scanOne examines up to n tasks of one state of queue from offset start
// and reports each poison task to found; with fix it moves them aside
// (an oversized task waiting in pending, scheduled or retry is archived).
// It returns the offset to resume at, and done when the state's end was
// reached. msgs are fetched in pipelines of at most Limit bytes.
func (g *Guard) scanOne(ctx context.Context, rdb redis.UniversalClient, queue, state string, list bool,
	start int64, n int, fix bool, found func(Finding)) (next int64, done bool, err error) {
	qp := queuePrefix(queue)
	var ids []string
	if list {
		ids, err = rdb.LRange(ctx, qp+state, start, start+int64(n)-1).Result()
	} else {
		ids, err = rdb.ZRange(ctx, qp+state, start, start+int64(n)-1).Result()
	}
	if err != nil || len(ids) == 0 {
		return 0, err == nil, err
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	lens, err := scanBatch.Run(ctx, rdb, []string{qp}, args...).Int64Slice()
	if err != nil {
		return start, false, err
	}
	var findings []Finding
	var toRead []int
	for i, id := range ids {
		f := Finding{Queue: queue, ID: id, State: state, Size: lens[i]}
		switch l := lens[i]; {
		case l <= 0:
			f.Reason, f.Detail = ReasonMissing, "the hash has no msg"
			if l < 0 {
				f.Detail = "the task hash does not exist"
			}
		case l > g.limit:
			if state == "archived" || state == "completed" {
				continue // out of the way already
			}
			f.Reason, f.Detail = ReasonOversized, fmt.Sprintf("msg of %d bytes, larger than %d", l, g.limit)
		default:
			toRead = append(toRead, i)
			continue
		}
		findings = append(findings, f)
	}
	msgs, err := g.readMsgs(ctx, rdb, qp, ids, lens, toRead)
	if err != nil {
		return start, false, err
	}
	for _, i := range toRead {
		msg, ok := msgs[ids[i]]
		if !ok {
			continue // gone meanwhile
		}
		if reason, detail := check([]byte(msg), ids[i], queue); reason != "" {
			findings = append(findings, Finding{Queue: queue, ID: ids[i], State: state, Reason: reason,
				Detail: detail, Size: int64(len(msg))})
		}
	}
	moved := 0
	for _, f := range findings {
		if fix {
			f.Fixed = g.fix(ctx, rdb, f)
			if f.Fixed {
				moved++
			}
		}
		found(f)
	}
	return start + int64(len(ids)-moved), len(ids) < n, nil
}

// readMsgs reads the msgs of ids[i] for i in which, in pipelines of at
// most Limit bytes.
func (g *Guard) readMsgs(ctx context.Context, rdb redis.UniversalClient, qp string, ids []string, lens []int64, which []int) (map[string]string, error) {
	out := make(map[string]string, len(which))
	for len(which) > 0 {
		var batch []int
		size := int64(0)
		for len(which) > 0 && (len(batch) == 0 || size+lens[which[0]] <= g.limit) {
			size += lens[which[0]]
			batch, which = append(batch, which[0]), which[1:]
		}
		pipe := rdb.Pipeline()
		cmds := make([]*redis.StringCmd, len(batch))
		for j, i := range batch {
			cmds[j] = pipe.HGet(ctx, qp+"t:"+ids[i], "msg")
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		for j, i := range batch {
			if v, err := cmds[j].Result(); err == nil {
				out[ids[i]] = v
			}
		}
	}
	return out, nil
}

// fix moves f aside, or archives it when oversized and waiting to run.
func (g *Guard) fix(ctx context.Context, rdb redis.UniversalClient, f Finding) bool {
	if f.Reason == ReasonOversized {
		if !slices.Contains([]string{"pending", "scheduled", "retry"}, f.State) {
			return false // active: the lease guard archives it when its lease expires
		}
		return g.archive(ctx, rdb, f.Queue, f.ID, f.State)
	}
	return g.setAside(ctx, rdb, f.Queue, f.ID, f.Reason, f.Detail, f.State, f.Size)
}

// ScanQueue scans every task of queue, state by state, and reports each
// poison task to found; with fix it moves them aside as the guard would.
// It is worker doctor's scan: its cost grows with the queue.
func (g *Guard) ScanQueue(ctx context.Context, rdb redis.UniversalClient, queue string, fix bool, found func(Finding)) error {
	for _, st := range scanStates {
		for off := int64(0); ; {
			next, done, err := g.scanOne(ctx, rdb, queue, st.name, st.list, off, scanChunk, fix, found)
			if err != nil {
				return fmt.Errorf("scan %s of queue %s: %w", st.name, queue, err)
			}
			if done {
				break
			}
			off = next
		}
	}
	return nil
}

// cursor is where the periodic scan resumes in one queue.
type cursor struct {
	state int
	off   int64
}

// step scans at most budget tasks over queues, resuming where the last
// step stopped, and fixes what it finds.
func (g *Guard) step(ctx context.Context, rdb redis.UniversalClient, queues []string, budget int, cur map[string]*cursor) error {
	for _, q := range queues {
		c := cur[q]
		if c == nil {
			c = &cursor{}
			cur[q] = c
		}
		for budget > 0 {
			st := scanStates[c.state]
			n := min(budget, scanChunk)
			next, done, err := g.scanOne(ctx, rdb, q, st.name, st.list, c.off, n, true, func(Finding) {})
			if err != nil {
				return err
			}
			budget -= n
			c.off = next
			if done {
				c.state, c.off = (c.state+1)%len(scanStates), 0
				if c.state == 0 {
					break // a full pass over this queue
				}
			}
		}
	}
	return nil
}

// Scanner settings: the periodic scan runs every ScanInterval on one worker
// of the fleet and reads at most ScanBudget task IDs (and their msgs, at
// most Limit bytes per round trip) per run: about 20 commands.
const (
	ScanInterval = time.Minute
	ScanBudget   = 2000
)

// scanLock makes one worker of the fleet the scanner for an interval.
const scanLock = "taskhost:quarantine:scanner"

// Run scans queues in steps of ScanBudget tasks every interval (ScanInterval
// when zero) while this process holds the fleet's scan lock, and at once
// after Kick; each run also reads the quarantine's size per queue for
// Quarantined. It returns when ctx ends. ready gates it while Redis is down.
func (g *Guard) Run(ctx context.Context, rdb redis.UniversalClient, queues []string, interval time.Duration, ready func() bool) {
	if interval <= 0 {
		interval = ScanInterval
	}
	token := randomToken()
	cur := map[string]*cursor{}
	first := time.NewTimer(time.Duration(rand.Int64N(int64(interval/10) + 1)))
	defer first.Stop()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		kicked := false
		select {
		case <-ctx.Done():
			return
		case <-first.C:
		case <-t.C:
		case <-g.kick:
			kicked = true
		}
		if ready != nil && !ready() {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, interval/2)
		g.refreshCounts(rctx, rdb, queues)
		ok, err := rdb.SetNX(rctx, scanLock, token, interval*9/10).Result()
		if kicked || (err == nil && ok) {
			if err := g.step(rctx, rdb, queues, ScanBudget, cur); err != nil && rctx.Err() == nil {
				g.log.Debug("queue guard: scan step failed; it runs again next interval", "error", err)
			}
		}
		cancel()
	}
}

func randomToken() string {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// refreshCounts reads the size of each queue's quarantine.
func (g *Guard) refreshCounts(ctx context.Context, rdb redis.UniversalClient, queues []string) {
	g.mu.Lock()
	recounts := make([]uint64, len(queues))
	for i, q := range queues {
		recounts[i] = g.recounts[q]
	}
	g.mu.Unlock()
	pipe := rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(queues))
	for i, q := range queues {
		cmds[i] = pipe.ZCard(ctx, quarantineKey(q))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, q := range queues {
		if g.recounts[q] == recounts[i] { // else a set-aside read it since
			g.counts[q] = cmds[i].Val()
		}
	}
}

// Quarantined returns the number of quarantined tasks by queue, as last
// read (by the scan loop, and after each set-aside), for the queues that
// hold any.
func (g *Guard) Quarantined() map[string]int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]int64{}
	for q, n := range g.counts {
		if n > 0 {
			out[q] = n
		}
	}
	return out
}

// Warnings says, for /healthz, which queues hold quarantined tasks.
func (g *Guard) Warnings() []string {
	counts := g.Quarantined()
	var out []string
	for _, q := range slices.Sorted(maps.Keys(counts)) {
		out = append(out, fmt.Sprintf("%d poison tasks of queue %s are in the quarantine (%s): "+
			"list and repair them with worker doctor", counts[q], q, quarantineKey(q)))
	}
	return out
}

// Entry is one quarantined task.
type Entry struct {
	Queue  string
	ID     string
	Reason string
	From   string // the states it was taken from
	At     time.Time
}

// List returns the quarantined tasks of queue, oldest first.
func List(ctx context.Context, rdb redis.UniversalClient, queue string) ([]Entry, error) {
	zs, err := rdb.ZRangeWithScores(ctx, quarantineKey(queue), 0, -1).Result()
	if err != nil {
		return nil, err
	}
	pipe := rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(zs))
	for i, z := range zs {
		cmds[i] = pipe.HMGet(ctx, quarantineKey(queue)+":"+fmt.Sprint(z.Member), "quarantine_reason", "quarantined_from")
	}
	if len(zs) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
	}
	out := make([]Entry, len(zs))
	for i, z := range zs {
		v := cmds[i].Val()
		e := Entry{Queue: queue, ID: fmt.Sprint(z.Member), At: time.Unix(int64(z.Score), 0)}
		if len(v) == 2 {
			e.Reason, _ = v[0].(string)
			e.From, _ = v[1].(string)
		}
		out[i] = e
	}
	return out, nil
}

// quarantineKey is the sorted set of queue q's quarantined task IDs.
func quarantineKey(q string) string { return "taskhost:quarantine:{" + q + "}" }

// QuarantineKey is the sorted set of queue q's quarantined task IDs, by
// Unix time; each task's hash is QuarantineKey(q)+":"+id.
func QuarantineKey(q string) string { return quarantineKey(q) }
