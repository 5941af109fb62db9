package quarantine

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
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

// An oversized task is archived by a call that takes nothing else, so that
// a slow archive never carries other tasks in a reply that may be lost.
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
	require.Equal(t, []string{b}, takenIDs(got), "the call that archived took nothing; the next one did")
	require.Equal(t, "archived", f.rdb.HGet(ctx, f.key(big), "state").Val())
}
