package quarantine

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
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

	got, err := f.g.DequeueBatch(ctx, f.rdb, keys, args, 4)
	require.NoError(t, err)
	require.Len(t, got, 4)
	for i, tk := range got {
		require.Equal(t, ids[i], tk.ID, "queue order")
		require.NotEmpty(t, tk.Msg)
		require.Equal(t, "active", f.rdb.HGet(ctx, f.key(tk.ID), "state").Val())
		require.Equal(t, args[0], int64(f.rdb.ZScore(ctx, keys[3], tk.ID).Val()), "leased")
	}
	got, err = f.g.DequeueBatch(ctx, f.rdb, keys, args, 10)
	require.NoError(t, err)
	require.Equal(t, []string{ids[4], ids[5], last}, takenIDs(got), "poison set aside, the rest taken")
	require.ElementsMatch(t, []string{missing, garbage}, f.rdb.ZRange(ctx, "taskhost:quarantine:{batch}", 0, -1).Val())
	require.EqualValues(t, 7, f.rdb.LLen(ctx, keys[2]).Val(), "active holds the 7 taken")

	_, err = f.g.DequeueBatch(ctx, f.rdb, keys, args, 10)
	require.ErrorIs(t, err, redis.Nil, "empty")
	f.enqueue(t, []byte("p"))
	require.NoError(t, f.rdb.Set(ctx, keys[1], "1", 0).Err())
	_, err = f.g.DequeueBatch(ctx, f.rdb, keys, args, 10)
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

	got, err := f.g.DequeueBatch(ctx, f.rdb, keys, args, 10)
	require.NoError(t, err)
	require.Equal(t, []string{a}, takenIDs(got))
	require.Equal(t, "pending", f.rdb.HGet(ctx, f.key(b), "state").Val())
	require.Zero(t, f.rdb.ZScore(ctx, keys[3], b).Val(), "b holds no lease")
	got, err = f.g.DequeueBatch(ctx, f.rdb, keys, args, 10)
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

	got, err := f.g.DequeueBatch(ctx, f.rdb, keys, args, 10)
	require.NoError(t, err)
	require.Equal(t, []string{a}, takenIDs(got), "stops before the oversized task")
	require.Equal(t, "pending", f.rdb.HGet(ctx, f.key(big), "state").Val())
	got, err = f.g.DequeueBatch(ctx, f.rdb, keys, args, 10)
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

// An archive whose reply times out is made again; Redis runs the first call
// once it can, the next one finds the task archived, and the archive counts
// once, as this process's, and is applied once.
func TestArchiveSurvivesALostReply(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	f := &fixture{g: New(Options{MaxPayloadBytes: 1024, Logger: discardLogger()}), queue: "lost"}
	f.rdb = redis.NewClient(&redis.Options{Addr: s.Addr(), ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
	t.Cleanup(func() { _ = f.rdb.Close() })
	ctx := context.Background()
	big := f.enqueue(t, make([]byte, int(f.g.Limit())+1))
	require.NoError(t, archiveOversized.Load(ctx, f.rdb).Err())
	short := &countingScripter{Client: redis.NewClient(&redis.Options{Addr: s.Addr(), ReadTimeout: 200 * time.Millisecond, MaxRetries: -1})}
	t.Cleanup(func() { _ = short.Close() })
	require.NoError(t, short.Ping(ctx).Err())

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
