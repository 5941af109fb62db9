package quarantine

import (
	"context"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/connerr"
)

// dequeueArgs are asynq's dequeue keys and arguments for f's queue.
func (f *fixture) dequeueArgs() ([]string, []any) {
	p := queuePrefix(f.queue)
	return []string{p + "pending", p + "paused", p + "active", p + "lease"},
		[]any{time.Now().Add(30 * time.Second).Unix(), p + "t:"}
}

// A batch takes up to n tasks in queue order in one call, each active and
// leased as asynq's dequeue leaves it; poison among them is set aside and
// the rest taken; a paused or empty queue answers redis.Nil.
func TestDequeueBatch(t *testing.T) {
	t.Parallel()
	f := setup(t, "batch")
	ctx := context.Background()
	var ids []string
	for i := range 6 {
		ids = append(ids, f.enqueue(t, []byte{byte(i)}))
	}
	missing := f.enqueue(t, []byte("x"))
	require.NoError(t, f.rdb.HDel(ctx, f.key(missing), "msg").Err())
	garbage := f.enqueue(t, []byte("y"))
	require.NoError(t, f.rdb.HSet(ctx, f.key(garbage), "msg", "garbage").Err())
	last := f.enqueue(t, []byte("z"))
	keys, args := f.dequeueArgs()

	got, err := f.g.DequeueBatch(ctx, f.rdb, keys, args, 4, "o1")
	require.NoError(t, err)
	require.Len(t, got, 4)
	for i, tk := range got {
		require.Equal(t, ids[i], tk.ID, "queue order")
		require.NotEmpty(t, tk.Msg)
		require.Equal(t, "active", f.rdb.HGet(ctx, f.key(tk.ID), "state").Val())
		require.Equal(t, args[0], int64(f.rdb.ZScore(ctx, keys[3], tk.ID).Val()), "leased")
	}
	got, err = f.g.DequeueBatch(ctx, f.rdb, keys, args, 10, "")
	require.NoError(t, err)
	require.Equal(t, []string{ids[4], ids[5], last}, takenIDs(got), "poison set aside, the rest taken")
	require.ElementsMatch(t, []string{missing, garbage}, f.rdb.ZRange(ctx, "taskhost:quarantine:{batch}", 0, -1).Val())
	require.EqualValues(t, 7, f.rdb.LLen(ctx, keys[2]).Val(), "active holds the 7 taken")

	_, err = f.g.DequeueBatch(ctx, f.rdb, keys, args, 10, "")
	require.ErrorIs(t, err, redis.Nil, "empty")
	f.enqueue(t, []byte("p"))
	require.NoError(t, f.rdb.Set(ctx, keys[1], "1", 0).Err())
	_, err = f.g.DequeueBatch(ctx, f.rdb, keys, args, 10, "")
	require.ErrorIs(t, err, redis.Nil, "paused")
}

// A batch's msgs stay within the msg size limit: a task that would pass it
// stays at the head of the queue for the next call, and one task is always
// taken.
func TestDequeueBatchByteBudget(t *testing.T) {
	t.Parallel()
	f := setup(t, "budget")
	ctx := context.Background()
	half := make([]byte, int(f.g.Limit())/2)
	a := f.enqueue(t, half)
	b := f.enqueue(t, half) // a's msg and b's together pass the limit
	c := f.enqueue(t, []byte("c"))
	keys, args := f.dequeueArgs()

	got, err := f.g.DequeueBatch(ctx, f.rdb, keys, args, 10, "")
	require.NoError(t, err)
	require.Equal(t, []string{a}, takenIDs(got))
	require.Equal(t, "pending", f.rdb.HGet(ctx, f.key(b), "state").Val())
	require.Zero(t, f.rdb.ZScore(ctx, keys[3], b).Val(), "b holds no lease")
	got, err = f.g.DequeueBatch(ctx, f.rdb, keys, args, 10, "")
	require.NoError(t, err)
	require.Equal(t, []string{b, c}, takenIDs(got), "b first: it went back to the head")
	require.EqualValues(t, 3, f.rdb.LLen(ctx, keys[2]).Val())
}

func takenIDs(ts []Taken) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

// An oversized task is taken by a call that takes nothing else, and then
// archived in a call of its own, so that a slow archive never carries other
// tasks in a reply that may be lost.
func TestDequeueBatchArchivesAlone(t *testing.T) {
	t.Parallel()
	f := setup(t, "alone")
	ctx := context.Background()
	a := f.enqueue(t, []byte("a"))
	big := f.enqueue(t, make([]byte, int(f.g.Limit())+1))
	b := f.enqueue(t, []byte("b"))
	keys, args := f.dequeueArgs()

	got, err := f.g.DequeueBatch(ctx, f.rdb, keys, args, 10, "")
	require.NoError(t, err)
	require.Equal(t, []string{a}, takenIDs(got), "stops before the oversized task")
	require.Equal(t, "pending", f.rdb.HGet(ctx, f.key(big), "state").Val())
	got, err = f.g.DequeueBatch(ctx, f.rdb, keys, args, 10, "")
	require.NoError(t, err)
	require.Equal(t, []string{b}, takenIDs(got), "the call that took the oversized task took nothing else; the next one did")
	require.Equal(t, "archived", f.rdb.HGet(ctx, f.key(big), "state").Val())
	require.Equal(t, map[[2]string]uint64{{"alone", ReasonOversized}: 1}, f.g.Totals())
}

// countingScripter counts the script calls made through it.
type countingScripter struct {
	*redis.Client
	calls atomic.Int32
}

func (c *countingScripter) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	c.calls.Add(1)
	return c.Client.EvalSha(ctx, sha, keys, args...)
}

func (c *countingScripter) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	c.calls.Add(1)
	return c.Client.Eval(ctx, script, keys, args...)
}

// shortClient is a client of f's server whose replies time out after
// 200 ms, with no retries, counting its script calls.
func (f *fixture) shortClient(t *testing.T) *countingScripter {
	t.Helper()
	c := &countingScripter{Client: redis.NewClient(&redis.Options{Addr: f.srv.Addr(), ReadTimeout: 200 * time.Millisecond, MaxRetries: -1})}
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Ping(context.Background()).Err())
	return c
}

// An archive whose reply times out is made again; Redis runs the first call
// once it can, the next one finds the task archived, and the archive counts
// once, as this process's, and is applied once.
func TestArchiveSurvivesALostReply(t *testing.T) {
	t.Parallel()
	f := setup(t, "lost")
	s := f.srv
	ctx := context.Background()
	big := f.enqueue(t, make([]byte, int(f.g.Limit())+1))
	require.NoError(t, archiveOversized.Load(ctx, f.rdb).Err())
	short := f.shortClient(t)

	s.Pause()
	done := make(chan bool, 1)
	go func() { done <- f.g.archive(ctx, short, f.queue, big, "pending") }()
	require.Eventually(t, func() bool { return short.calls.Load() >= 2 }, 30*time.Second, time.Millisecond,
		"a second attempt after the first reply timed out")
	s.Resume()
	require.True(t, <-done)

	require.Equal(t, "archived", f.rdb.HGet(ctx, f.key(big), "state").Val())
	require.Equal(t, "1", f.rdb.Get(ctx, queuePrefix(f.queue)+"processed").Val(), "archived once")
	require.Equal(t, map[[2]string]uint64{{"lost", ReasonOversized}: 1}, f.g.Totals(), "counted once, as this process's")
	info, err := asynq.NewInspectorFromRedisClient(f.rdb).GetTaskInfo(f.queue, big)
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(info.LastErr, "archived without being read"), info.LastErr)
}

// lossyScripter loses the reply of the batched dequeue script's first call:
// after running it (ran), or before it reaches Redis, keeping the call to
// send later (late).
type lossyScripter struct {
	*redis.Client
	ran  bool
	lost atomic.Bool
	late func()
}

func (c *lossyScripter) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	if sha != guardedDequeueBatch.Hash() || !c.lost.CompareAndSwap(false, true) {
		return c.Client.EvalSha(ctx, sha, keys, args...)
	}
	if c.ran {
		c.Client.EvalSha(ctx, sha, keys, args...)
	} else {
		c.late = func() { c.Client.EvalSha(ctx, sha, keys, args...) }
	}
	return redis.NewCmdResult(nil, &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded})
}

// A batch whose reply is lost after it ran is claimed from the receipt:
// the caller gets the tasks it took, leased, as the lost reply held them.
func TestDequeueBatchClaimsALostReply(t *testing.T) {
	t.Parallel()
	f := setup(t, "claim")
	ctx := context.Background()
	ids := []string{f.enqueue(t, []byte("a")), f.enqueue(t, []byte("b")), f.enqueue(t, []byte("c"))}
	require.NoError(t, guardedDequeueBatch.Load(ctx, f.rdb).Err())
	keys, args := f.dequeueArgs()
	c := &lossyScripter{Client: f.rdb, ran: true}

	got, err := f.g.DequeueBatch(ctx, c, keys, args, 10, "o1")
	require.NoError(t, err)
	require.True(t, c.lost.Load(), "the reply was lost")
	require.Equal(t, ids, takenIDs(got))
	for _, id := range ids {
		require.Equal(t, args[0], int64(f.rdb.ZScore(ctx, keys[3], id).Val()), "leased")
	}
	require.Zero(t, f.rdb.LLen(ctx, keys[0]).Val())
}

// A batch whose reply is lost before it reached Redis is voided by the
// claim: the caller gets the timeout, and the call, arriving late, takes
// nothing, so no task is leased to nobody.
func TestDequeueBatchVoidsALateCall(t *testing.T) {
	t.Parallel()
	f := setup(t, "void")
	ctx := context.Background()
	f.enqueue(t, []byte("a"))
	f.enqueue(t, []byte("b"))
	require.NoError(t, guardedDequeueBatch.Load(ctx, f.rdb).Err())
	keys, args := f.dequeueArgs()
	c := &lossyScripter{Client: f.rdb}

	_, err := f.g.DequeueBatch(ctx, c, keys, args, 10, "o1")
	require.True(t, connerr.TimedOut(err), "the lost reply's error: %v", err)
	c.late()
	require.EqualValues(t, 2, f.rdb.LLen(ctx, keys[0]).Val(), "the late call took nothing")
	require.Zero(t, f.rdb.LLen(ctx, keys[2]).Val())

	got, err := f.g.DequeueBatch(ctx, f.rdb, keys, args, 10, "o1")
	require.NoError(t, err)
	require.Len(t, got, 2, "the next call takes them")
}

// A real Redis stall: the batch's reply times out. Whichever of the call
// and the claim Redis runs first, no task is left leased to nobody.
func TestDequeueBatchThroughAStall(t *testing.T) {
	t.Parallel()
	f := setup(t, "stall")
	s := f.srv
	ctx := context.Background()
	for i := range 4 {
		f.enqueue(t, []byte{byte(i)})
	}
	require.NoError(t, guardedDequeueBatch.Load(ctx, f.rdb).Err())
	require.NoError(t, claimBatch.Load(ctx, f.rdb).Err())
	short := f.shortClient(t)
	keys, args := f.dequeueArgs()

	s.Pause()
	type result struct {
		got []Taken
		err error
	}
	done := make(chan result, 1)
	go func() {
		got, err := f.g.DequeueBatch(ctx, short, keys, args, 10, "o1")
		done <- result{got, err}
	}()
	require.Eventually(t, func() bool { return short.calls.Load() >= 2 }, 30*time.Second, time.Millisecond,
		"a claim after the batch's reply timed out")
	s.Resume()
	r := <-done
	t.Logf("batch: %d tasks, error %v", len(r.got), r.err)
	active := f.rdb.LRange(ctx, keys[2], 0, -1).Val()
	if r.err != nil {
		require.True(t, connerr.TimedOut(r.err), "%v", r.err)
		require.Empty(t, active, "the call was voided: nothing taken")
		require.EqualValues(t, 4, f.rdb.LLen(ctx, keys[0]).Val())
		return
	}
	require.ElementsMatch(t, active, takenIDs(r.got), "every active task was handed out")
	require.Len(t, r.got, 4)
}
