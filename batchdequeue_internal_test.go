package taskhost

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/quarantine"
	"github.com/taskhost/taskhost/internal/redistest"
)

type batchEnv struct {
	rdb  *redis.Client
	b    *batcher
	keys []string
	ids  []string
}

// batchSetup fills queue "b" with n tasks and returns a batcher for slots
// slots on it.
func batchSetup(t *testing.T, n, slots int) *batchEnv {
	t.Helper()
	s := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	e := &batchEnv{rdb: rdb, keys: []string{"asynq:{b}:pending", "asynq:{b}:paused", "asynq:{b}:active", "asynq:{b}:lease"}}
	c := asynq.NewClientFromRedisClient(rdb)
	for range n {
		info, err := c.Enqueue(asynq.NewTask("b:t", nil), asynq.Queue("b"))
		require.NoError(t, err)
		e.ids = append(e.ids, info.ID)
	}
	g := quarantine.New(quarantine.Options{Logger: slog.New(slog.DiscardHandler)})
	e.b = newBatcher(rdb, g, 16, slots, slog.New(slog.DiscardHandler))
	t.Cleanup(e.b.close)
	return e
}

func (e *batchEnv) take(t *testing.T) (string, error) {
	t.Helper()
	args := []any{time.Now().Add(30 * time.Second).Unix(), "asynq:{b}:t:"}
	return e.b.take(context.Background(), e.keys, args, "f0").Text()
}

func (e *batchEnv) lens(t *testing.T) (pending, active, leased int64) {
	t.Helper()
	ctx := context.Background()
	return e.rdb.LLen(ctx, e.keys[0]).Val(), e.rdb.LLen(ctx, e.keys[2]).Val(), e.rdb.ZCard(ctx, e.keys[3]).Val()
}

// One round trip takes a task for the caller and holds one for each other
// free slot; the next dequeues get them without a round trip; close puts
// what is still held back at the head of the queue, unleased.
func TestBatcherHoldsOnlyForFreeSlots(t *testing.T) {
	t.Parallel()
	e := batchSetup(t, 20, 5)
	e.b.busy.Store(1) // one slot runs a task: 4 free, the caller's included
	msg, err := e.take(t)
	require.NoError(t, err)
	require.NotEmpty(t, msg)
	pending, active, leased := e.lens(t)
	require.Equal(t, [3]int64{16, 4, 4}, [3]int64{pending, active, leased}, "4 taken: 1 handed out, 3 held")
	require.EqualValues(t, 2, e.b.busy.Load())

	_, err = e.take(t)
	require.NoError(t, err)
	pending, _, _ = e.lens(t)
	require.EqualValues(t, 16, pending, "served from what is held")

	e.b.close()
	pending, active, leased = e.lens(t)
	require.Equal(t, [3]int64{18, 2, 2}, [3]int64{pending, active, leased}, "the 2 held went back")
	head, err := e.rdb.LIndex(context.Background(), e.keys[0], -1).Result()
	require.NoError(t, err)
	require.Equal(t, e.ids[3], head, "at the head of the line (asynq pops from the right)")
	require.Equal(t, "pending", e.rdb.HGet(context.Background(), "asynq:{b}:t:"+head, "state").Val())
}

// A dequeue proves its slot free: a count that leaked (a task whose
// handler never ran) is corrected, and the batch still takes one task.
func TestBatcherCorrectsItsCount(t *testing.T) {
	t.Parallel()
	e := batchSetup(t, 5, 3)
	e.b.busy.Store(7)
	_, err := e.take(t)
	require.NoError(t, err)
	_, active, _ := e.lens(t)
	require.EqualValues(t, 1, active)
	require.EqualValues(t, 3, e.b.busy.Load())
	e.b.finished()
	e.b.finished()
	e.b.finished()
	e.b.finished()
	require.Zero(t, e.b.busy.Load(), "never negative")
}

// A slot counts as free once its handler returns, while asynq still marks
// the task done: a batch taken then holds a task for it.
func TestBatcherFreesASlotWhenItsHandlerReturns(t *testing.T) {
	t.Parallel()
	e := batchSetup(t, 1, 3)
	e.b.busy.Store(1) // the dequeue that handed the task out
	var during int64
	h := e.b.track(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		during = e.b.busy.Load()
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background()) // asynq ends it after marking the task done
	defer cancel()
	require.NoError(t, h.ProcessTask(ctx, asynq.NewTask("x", nil)))
	require.EqualValues(t, 1, during, "busy while the handler runs")
	require.Zero(t, e.b.busy.Load(), "free once the handler returned, before the task's context ends")
}

// A task held for heldMax goes back to its queue on its own, well before
// its lease could expire.
func TestBatcherReturnsStaleTasks(t *testing.T) {
	t.Parallel()
	e := batchSetup(t, 10, 4)
	_, err := e.take(t)
	require.NoError(t, err)
	pending, _, _ := e.lens(t)
	require.EqualValues(t, 6, pending)
	require.Eventually(t, func() bool {
		pending, active, leased := e.lens(t)
		return pending == 9 && active == 1 && leased == 1
	}, 10*time.Second, 20*time.Millisecond)
	e.b.mu.Lock()
	defer e.b.mu.Unlock()
	require.Zero(t, e.b.nheld)
}

// A stream of batches of one queue does not put off the return of another
// queue's stale tasks.
func TestBatcherReturnsStaleTasksWhileAnotherQueueDrains(t *testing.T) {
	t.Parallel()
	e := batchSetup(t, 10, 16) // queue b: 10 tasks; 16 slots, so that batches of a hold tasks too
	c := asynq.NewClientFromRedisClient(e.rdb)
	for range 2000 {
		_, err := c.Enqueue(asynq.NewTask("a:t", nil), asynq.Queue("a"))
		require.NoError(t, err)
	}
	_, err := e.take(t) // 1 handed out, 9 of b held
	require.NoError(t, err)
	e.b.finished()
	aKeys := []string{"asynq:{a}:pending", "asynq:{a}:paused", "asynq:{a}:active", "asynq:{a}:lease"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pending, _, _ := e.lens(t)
		if pending == 9 {
			break
		}
		require.True(t, time.Now().Before(deadline), "b's held tasks were not returned while a drained")
		args := []any{time.Now().Add(30 * time.Second).Unix(), "asynq:{a}:t:"}
		_, err := e.b.take(context.Background(), aKeys, args, "f0").Text()
		require.NoError(t, err)
		e.b.finished()
		time.Sleep(5 * time.Millisecond)
	}
}
