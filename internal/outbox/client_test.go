package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/outbox"
	"github.com/taskhost/taskhost/internal/redistest"
)

func TestDirectWhileReady(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	f := setup(t, srv.Addr(), outbox.Options{})
	f.ready.Store(true)

	r, err := f.c.Submit(context.Background(), asynq.NewTask("direct:a", payload(0), asynq.Queue("q1")))
	require.NoError(t, err)
	require.False(t, r.Held)
	require.Equal(t, "q1", r.Info.Queue, "options given to NewTask apply")
	_, err = uuid.Parse(r.Info.ID)
	require.NoError(t, err, "a generated ID is a UUID")

	info, err := f.c.Enqueue(asynq.NewTask("direct:a", payload(1)), asynq.TaskID("mine"))
	require.NoError(t, err)
	require.Equal(t, "mine", info.ID)

	info, err = f.c.EnqueueContext(context.Background(), asynq.NewTask("direct:a", payload(2), asynq.TaskID("from-task")))
	require.NoError(t, err)
	require.Equal(t, "from-task", info.ID, "a TaskID given to NewTask is kept")

	got := inRedis(t, f.rdb, "q1", "default")
	require.Len(t, got, 3)
	require.Equal(t, "mine", got[string(payload(1))][0].ID)
	n, _ := f.c.Depth()
	require.Zero(t, n)
}

// asynq's refusals are the caller's to handle, on either path; none is held.
func TestRefusalsAreReturnedNotHeld(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	f := setup(t, srv.Addr(), outbox.Options{})
	task := asynq.NewTask("refuse:a", payload(0))
	for _, ready := range []bool{true, false} {
		f.ready.Store(ready)
		_, err := f.c.Enqueue(task, asynq.Unique(0))
		require.ErrorContains(t, err, "Unique TTL cannot be less than 1s", "ready=%v", ready)
		_, err = f.c.Enqueue(task, asynq.Queue(" "))
		require.ErrorContains(t, err, "queue name", "ready=%v", ready)
		_, err = f.c.Enqueue(task, asynq.TaskID(""))
		require.ErrorContains(t, err, "task ID cannot be empty", "ready=%v", ready)
		_, err = f.c.Enqueue(asynq.NewTask(" ", nil))
		require.ErrorContains(t, err, "typename", "ready=%v", ready)
		_, err = f.c.Enqueue(nil)
		require.Error(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err = f.c.EnqueueContext(ctx, task)
		require.ErrorIs(t, err, context.Canceled, "ready=%v", ready)
	}
	n, _ := f.c.Depth()
	require.Zero(t, n)

	f.ready.Store(true)
	_, err := f.c.Enqueue(task, asynq.TaskID("once"))
	require.NoError(t, err)
	_, err = f.c.Enqueue(task, asynq.TaskID("once"))
	require.ErrorIs(t, err, asynq.ErrTaskIDConflict)
	_, err = f.c.Enqueue(task, asynq.Unique(time.Hour))
	require.NoError(t, err)
	_, err = f.c.Enqueue(task, asynq.Unique(time.Hour))
	require.ErrorIs(t, err, asynq.ErrDuplicateTask)
	n, _ = f.c.Depth()
	require.Zero(t, n)
}

// While the monitor still says ready, a direct enqueue that fails for want
// of a connection falls back to the outbox; the task is delivered when
// Redis answers again, without a Kick.
func TestConnectionFailureFallsBackToOutbox(t *testing.T) {
	t.Parallel()
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		port, addr := closedPort(t)
		f := setup(t, addr, outbox.Options{CheckInterval: 20 * time.Millisecond})
		f.ready.Store(true)
		start := time.Now()
		r, err := f.c.Submit(context.Background(), asynq.NewTask("fallback:a", payload(0)))
		require.NoError(t, err)
		require.True(t, r.Held)
		require.Less(t, time.Since(start), 500*time.Millisecond)
		require.Len(t, f.logs.lines("connection refused"), 1, "the hold logs its cause once")

		startOn(t, port, redistest.Options{})
		require.Eventually(t, func() bool { n, _ := f.c.Depth(); return n == 0 }, 10*time.Second, 10*time.Millisecond)
		requireExactlyOnce(t, inRedis(t, f.rdb, "default"), 1)
	})
	t.Run("frozen", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Start(t)
		f := setup(t, srv.Addr(), outbox.Options{CheckInterval: 20 * time.Millisecond})
		f.ready.Store(true)
		require.NoError(t, f.rdb.Ping(context.Background()).Err())
		srv.Pause()
		start := time.Now()
		r, err := f.c.Submit(context.Background(), asynq.NewTask("fallback:b", payload(0)))
		took := time.Since(start)
		srv.Resume()
		require.NoError(t, err)
		require.True(t, r.Held)
		require.Less(t, took, 2*time.Second, "bounded by the client's own timeouts")
		require.Eventually(t, func() bool { n, _ := f.c.Depth(); return n == 0 }, 10*time.Second, 10*time.Millisecond)
		requireExactlyOnce(t, inRedis(t, f.rdb, "default"), 1)
	})
}

// The TaskInfo of a held task says what asynq says for the same task.
func TestHeldInfoMatchesAsynq(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	f := setup(t, srv.Addr(), outbox.Options{})
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	deadline := time.Now().Add(3 * time.Hour).Truncate(time.Second)
	cases := map[string][]asynq.Option{
		"defaults":  nil,
		"scheduled": {asynq.ProcessAt(at), asynq.Queue("qa")},
		"in":        {asynq.ProcessIn(time.Hour), asynq.MaxRetry(-4)},
		"timeouts":  {asynq.Timeout(90 * time.Second), asynq.Deadline(deadline), asynq.Retention(36 * time.Hour)},
		"deadline":  {asynq.Deadline(deadline)},
		"group":     {asynq.Group("g1"), asynq.MaxRetry(2)},
		"unique":    {asynq.Unique(time.Minute), asynq.Queue("qb")},
		"override":  {asynq.Queue("x"), asynq.Queue("qc"), asynq.ProcessAt(at), asynq.ProcessIn(-time.Minute)},
	}
	i := 0
	for name, opts := range cases {
		i++
		f.ready.Store(true)
		want, err := f.c.Enqueue(asynq.NewTask("mirror:"+name, payload(i)), opts...)
		require.NoError(t, err, name)
		f.ready.Store(false)
		r, err := f.c.Submit(context.Background(), asynq.NewTask("mirror:"+name, payload(-i)), opts...)
		require.NoError(t, err, name)
		require.True(t, r.Held, name)
		got := r.Info
		require.NotEqual(t, want.ID, got.ID)
		require.Equal(t, want.Queue, got.Queue, name)
		require.Equal(t, want.Type, got.Type, name)
		require.Equal(t, payload(-i), got.Payload, name)
		require.Equal(t, want.State, got.State, name)
		require.Equal(t, want.MaxRetry, got.MaxRetry, name)
		require.Equal(t, want.Timeout, got.Timeout, name)
		require.True(t, want.Deadline.Equal(got.Deadline), "%s: deadline %v, want %v", name, got.Deadline, want.Deadline)
		require.Equal(t, want.Retention, got.Retention, name)
		require.Equal(t, want.Group, got.Group, name)
		require.WithinDuration(t, want.NextProcessAt, got.NextProcessAt, time.Second, name)
	}
}

// Group, headers, deadline and retention reach Redis through the outbox.
func TestOptionsSurviveTheOutbox(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	f := setup(t, srv.Addr(), outbox.Options{})
	deadline := time.Now().Add(3 * time.Hour).Truncate(time.Second)
	task := asynq.NewTaskWithHeaders("opts:g", payload(0), map[string]string{"trace": "abc"})
	r, err := f.c.Submit(context.Background(), task,
		asynq.Queue("qg"), asynq.Group("batch"), asynq.Deadline(deadline), asynq.Retention(time.Hour), asynq.MaxRetry(4))
	require.NoError(t, err)
	require.True(t, r.Held)
	require.Equal(t, asynq.TaskStateAggregating, r.Info.State)
	f.up()

	insp := asynq.NewInspectorFromRedisClient(f.rdb)
	infos, err := insp.ListAggregatingTasks("qg", "batch")
	require.NoError(t, err)
	require.Len(t, infos, 1)
	got := infos[0]
	require.Equal(t, r.Info.ID, got.ID)
	require.Equal(t, "batch", got.Group)
	require.Equal(t, map[string]string{"trace": "abc"}, got.Headers)
	require.True(t, deadline.Equal(got.Deadline))
	require.Equal(t, time.Hour, got.Retention)
	require.Equal(t, 4, got.MaxRetry)
}

// A task Redis already has (a delivery whose reply was lost, or a replay
// after a crash) counts as delivered, once.
func TestReplayOfPresentTaskIsSuccess(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	f := setup(t, srv.Addr(), outbox.Options{})
	bare := asynq.NewClientFromRedisClient(f.rdb)
	_, err := bare.Enqueue(asynq.NewTask("replay:a", payload(0)), asynq.TaskID("dup-1"))
	require.NoError(t, err)
	_, err = bare.Enqueue(asynq.NewTask("replay:a", payload(1)), asynq.Unique(time.Hour))
	require.NoError(t, err)

	_, err = f.c.Enqueue(asynq.NewTask("replay:a", payload(0)), asynq.TaskID("dup-1"))
	require.NoError(t, err)
	_, err = f.c.Enqueue(asynq.NewTask("replay:a", payload(1)), asynq.Unique(time.Hour))
	require.NoError(t, err)
	require.True(t, f.c.Held("dup-1"))
	f.up()

	requireExactlyOnce(t, inRedis(t, f.rdb, "default"), 2)
	require.Contains(t, f.logs.lines("drain finished")[0], "delivered=0 already_in_redis=2")
}

// Draining waits for Ready, then goes in acceptance order at DrainRate.
func TestDrainWaitsForReadyThenFIFOAtRate(t *testing.T) {
	t.Parallel()
	const n = 100
	srv := redistest.Start(t)
	f := setup(t, srv.Addr(), outbox.Options{DrainRate: 200, CheckInterval: 10 * time.Millisecond})
	ids := make([]string, n)
	for i := range n {
		info, err := f.c.Enqueue(asynq.NewTask("fifo:a", payload(i)), asynq.Queue("fifo"))
		require.NoError(t, err)
		ids[i] = info.ID
	}
	f.c.Kick()
	time.Sleep(50 * time.Millisecond) // five checks while not ready
	held, _ := f.c.Depth()
	require.Equal(t, n, held, "nothing is delivered while Redis is not ready")
	require.Zero(t, f.rdb.Exists(context.Background(), "asynq:{fifo}:pending").Val())

	start := time.Now()
	f.up()
	took := time.Since(start)
	// 200/s with a burst of 10: the first 10 at once, then 90 in 450 ms.
	require.GreaterOrEqual(t, took, 400*time.Millisecond, "DrainRate bounds the drain")

	// asynq pushes on the left and pops on the right: the list reads
	// newest first, so reversed it must be the acceptance order.
	list, err := f.rdb.LRange(context.Background(), "asynq:{fifo}:pending", 0, -1).Result()
	require.NoError(t, err)
	require.Len(t, list, n)
	for i := range n {
		require.Equal(t, ids[i], list[n-1-i], "position %d", i)
	}
}

func TestCloseStopsAndKeepsTheSharedClient(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	f := setup(t, srv.Addr(), outbox.Options{DrainRate: math.Inf(1)})
	_, err := f.c.Enqueue(asynq.NewTask("close:a", payload(0)))
	require.NoError(t, err)

	require.NoError(t, f.c.Close())
	require.NoError(t, f.c.Close())
	_, err = f.c.Enqueue(asynq.NewTask("close:a", payload(1)))
	require.ErrorIs(t, err, outbox.ErrClosed)
	require.ErrorIs(t, f.c.Flush(context.Background()), outbox.ErrClosed)
	require.NoError(t, f.rdb.Ping(context.Background()).Err(), "the shared client stays open")
	require.Len(t, f.logs.lines("they are lost"), 1, "a memory outbox closed with tasks says so")
}

func TestFlushHonoursContext(t *testing.T) {
	t.Parallel()
	_, addr := closedPort(t)
	f := setup(t, addr, outbox.Options{})
	_, err := f.c.Enqueue(asynq.NewTask("flush:a", payload(0)))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	err = f.c.Flush(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "1 tasks still held")
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	rdb := sharedClient(t, redistest.ClosedAddr(t))
	inner := asynq.NewClientFromRedisClient(rdb)
	ready := func() bool { return false }
	for _, o := range []outbox.Options{{MaxTasks: -1}, {MaxBytes: -1}, {DrainRate: -1}, {DrainRate: math.NaN()}} {
		_, err := outbox.New(inner, ready, o)
		require.Error(t, err, fmt.Sprintf("%+v", o))
	}
	_, err := outbox.New(nil, ready, outbox.Options{})
	require.Error(t, err)
	_, err = outbox.New(inner, nil, outbox.Options{})
	require.True(t, err != nil && !errors.Is(err, outbox.ErrClosed))
}

// A refusal from Redis during a drain (here: out of memory) keeps the task
// held and pauses the drain; it resumes once Redis takes writes again.
func TestDrainKeepsTasksRedisRefuses(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	f := setup(t, srv.Addr(), outbox.Options{CheckInterval: 20 * time.Millisecond})
	for i := range 5 {
		_, err := f.c.Enqueue(mustTask(i))
		require.NoError(t, err)
	}
	bg := context.Background()
	require.NoError(t, f.rdb.ConfigSet(bg, "maxmemory", "1").Err())
	f.ready.Store(true)
	f.c.Kick()
	require.Eventually(t, func() bool { return len(f.logs.lines("drain paused")) > 0 }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond) // several more checks
	n, _ := f.c.Depth()
	require.Equal(t, 5, n, "a refused task stays held")
	require.Len(t, f.logs.lines("drain paused"), 1, "paused is logged once, not per retry")
	require.Contains(t, f.logs.lines("drain paused")[0], "OOM")

	require.NoError(t, f.rdb.ConfigSet(bg, "maxmemory", "0").Err())
	f.up()
	requireExactlyOnce(t, inRedis(t, f.rdb, "default"), 5)
}
