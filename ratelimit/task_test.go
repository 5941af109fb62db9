package ratelimit_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/ratelimit"
)

func TestIsFailureAndRetryDelay(t *testing.T) {
	t.Parallel()
	limited := &ratelimit.LimitedError{RetryIn: 700 * time.Millisecond}
	wrapped := errors.Join(errors.New("context"), limited)
	require.False(t, ratelimit.IsFailure(limited))
	require.False(t, ratelimit.IsFailure(wrapped))
	require.True(t, ratelimit.IsFailure(errors.New("boom")))

	task := asynq.NewTask("t", nil)
	require.Equal(t, 700*time.Millisecond, ratelimit.RetryDelay(3, wrapped, task))
	require.Equal(t, time.Duration(0), ratelimit.RetryDelay(0, &ratelimit.LimitedError{RetryIn: -time.Second}, task))
	require.Positive(t, ratelimit.RetryDelay(0, errors.New("boom"), task), "other errors use asynq's default")

	custom := ratelimit.RetryDelayFunc(func(int, error, *asynq.Task) time.Duration { return 42 * time.Second })
	require.Equal(t, 42*time.Second, custom(1, errors.New("boom"), task))
	require.Equal(t, 700*time.Millisecond, custom(1, limited, task))

	reg, err := ratelimit.New(nil, ratelimit.Options{})
	require.NoError(t, err)
	defer reg.Close()
	_, err = reg.TaskMiddleware(map[string]string{"ok": "1-S", "email:send": "five-S"})
	require.ErrorContains(t, err, `ratelimit.tasks.email:send: "five-S" is not a rate`)
}

// queue is an asynq server, client and inspector on one redis-server, with
// the rate-limit hooks wired the way the runtime wires them.
type queue struct {
	rdb       *redis.Client
	reg       *ratelimit.Registry
	client    *asynq.Client
	inspector *asynq.Inspector
	server    *asynq.Server
	mux       *asynq.ServeMux

	mu   sync.Mutex
	done map[string][]time.Time // handler runs by task type
}

func newQueue(t *testing.T, rates map[string]string) *queue {
	t.Helper()
	srv := redistest.Start(t)
	q := &queue{rdb: adminClient(t, srv.Addr()), done: map[string][]time.Time{}}
	reg, err := ratelimit.New(q.rdb, ratelimit.Options{Logger: quietLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = reg.Close() }) // no Watch: on Redis from the first check
	q.reg = reg
	mw, err := reg.TaskMiddleware(rates)
	require.NoError(t, err)
	q.mux = asynq.NewServeMux()
	q.mux.Use(mw)
	q.client = asynq.NewClientFromRedisClient(q.rdb)
	q.inspector = asynq.NewInspectorFromRedisClient(q.rdb)
	q.server = asynq.NewServerFromRedisClient(q.rdb, asynq.Config{
		Concurrency:              10,
		IsFailure:                ratelimit.IsFailure,
		RetryDelayFunc:           ratelimit.RetryDelay,
		TaskCheckInterval:        50 * time.Millisecond,
		DelayedTaskCheckInterval: 100 * time.Millisecond,
		LogLevel:                 asynq.ErrorLevel,
	})
	return q
}

func (q *queue) record(typ string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.done[typ] = append(q.done[typ], time.Now())
}

func (q *queue) runs(typ string) []time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]time.Time(nil), q.done[typ]...)
}

func (q *queue) start(t *testing.T) {
	t.Helper()
	require.NoError(t, q.server.Start(q.mux))
	t.Cleanup(q.server.Shutdown)
}

func (q *queue) enqueue(t *testing.T, typ string, opts ...asynq.Option) string {
	t.Helper()
	info, err := q.client.Enqueue(asynq.NewTask(typ, nil), append([]asynq.Option{asynq.Retention(time.Hour)}, opts...)...)
	require.NoError(t, err)
	return info.ID
}

// A task type limited to 5 per second with 50 tasks enqueued: all complete,
// none is archived, none used up a retry, spread over about 10 s.
func TestTaskMiddlewareSpreadsTasksOverWindows(t *testing.T) {
	t.Parallel()
	const typ, n = "report:build", 50
	q := newQueue(t, map[string]string{typ: "5-S"})
	q.mux.HandleFunc(typ, func(context.Context, *asynq.Task) error { q.record(typ); return nil })
	for range n {
		q.enqueue(t, typ, asynq.MaxRetry(3))
	}
	q.start(t)

	require.Eventually(t, func() bool { return len(q.runs(typ)) >= n }, 40*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool {
		info, err := q.inspector.GetQueueInfo("default")
		return err == nil && info.Completed == n
	}, 5*time.Second, 50*time.Millisecond)

	runs := q.runs(typ)
	require.Len(t, runs, n, "each task ran once")
	spread := runs[n-1].Sub(runs[0])
	t.Logf("50 tasks at 5-S completed over %s; %d checks, %d over the limit", spread, q.reg.Stats().Checks, q.reg.Stats().Rejections)
	require.GreaterOrEqual(t, spread, 8*time.Second, "5 per second spreads 50 tasks over about 10 s")
	require.Less(t, spread, 25*time.Second)
	// Each waiting task is checked about once per window: 45+40+...+5 = 225
	// rejections at best. Tasks that asynq would bring straight back (retry
	// times are whole seconds) wait in the handler instead of polling.
	require.Less(t, q.reg.Stats().Rejections, uint64(500), "retries poll instead of waiting for the window")
	// Fixed windows of 1 s: less than 1 s can overlap two windows at most, so
	// any 11 runs span at least 1 s (less a margin for scheduling delays
	// between the check and the handler).
	for i := 10; i < n; i++ {
		require.GreaterOrEqual(t, runs[i].Sub(runs[i-10]), 700*time.Millisecond,
			"11 runs within one second (runs %d..%d)", i-10, i)
	}

	info, err := q.inspector.GetQueueInfo("default")
	require.NoError(t, err)
	require.Zero(t, info.Archived, "no task archived")
	require.Zero(t, info.Retry)
	require.Zero(t, info.Failed, "a rate-limited run is not a failure")
	completed, err := q.inspector.ListCompletedTasks("default", asynq.PageSize(100))
	require.NoError(t, err)
	require.Len(t, completed, n)
	for _, ti := range completed {
		require.Zero(t, ti.Retried, "task %s used a retry", ti.ID)
	}
}

// TestAsynqRetryAccounting pins asynq v0.26.0's handling of non-failures, on
// which the middleware relies: a LimitedError retry leaves Retried alone, any
// number of times; but a task at Retried >= MaxRetry is archived on any
// error, before IsFailure is asked. The middleware therefore waits for the
// window in the handler on a task's last attempt.
func TestAsynqRetryAccounting(t *testing.T) {
	t.Parallel()
	const manyRetries, lastAttempt, guarded = "pin:many", "pin:last", "pin:guarded"
	q := newQueue(t, map[string]string{guarded: "1-S"})
	var mu sync.Mutex
	attempts := map[string]int{}
	q.mux.HandleFunc(manyRetries, func(ctx context.Context, _ *asynq.Task) error {
		mu.Lock()
		attempts[manyRetries]++
		a := attempts[manyRetries]
		mu.Unlock()
		if a <= 4 {
			return &ratelimit.LimitedError{RetryIn: 0}
		}
		q.record(manyRetries)
		return nil
	})
	q.mux.HandleFunc(lastAttempt, func(context.Context, *asynq.Task) error {
		return &ratelimit.LimitedError{RetryIn: time.Second}
	})
	q.mux.HandleFunc(guarded, func(context.Context, *asynq.Task) error { q.record(guarded); return nil })

	// Use up the guarded type's window so its task meets the limit.
	l, err := q.reg.Limiter("task:"+guarded, "1-S")
	require.NoError(t, err)
	opened, err := l.Allow(context.Background(), "")
	require.NoError(t, err)
	idMany := q.enqueue(t, manyRetries, asynq.MaxRetry(1))
	idLast := q.enqueue(t, lastAttempt, asynq.MaxRetry(0))
	idGuarded := q.enqueue(t, guarded, asynq.MaxRetry(0))
	q.start(t)

	taskState := func(id string) asynq.TaskState {
		ti, err := q.inspector.GetTaskInfo("default", id)
		if err != nil {
			return 0
		}
		return ti.State
	}
	require.Eventually(t, func() bool {
		return taskState(idMany) == asynq.TaskStateCompleted && taskState(idLast) == asynq.TaskStateArchived &&
			taskState(idGuarded) == asynq.TaskStateCompleted
	}, 20*time.Second, 50*time.Millisecond)

	ti, err := q.inspector.GetTaskInfo("default", idMany)
	require.NoError(t, err)
	require.Zero(t, ti.Retried, "4 non-failure retries on MaxRetry(1) consume no retry")
	mu.Lock()
	require.Equal(t, 5, attempts[manyRetries])
	mu.Unlock()

	ti, err = q.inspector.GetTaskInfo("default", idLast)
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStateArchived, ti.State, "asynq archives a MaxRetry(0) task even on a non-failure")
	require.Contains(t, ti.LastErr, "rate limited")

	ti, err = q.inspector.GetTaskInfo("default", idGuarded)
	require.NoError(t, err)
	require.Zero(t, ti.Retried)
	runs := q.runs(guarded)
	require.Len(t, runs, 1)
	require.False(t, runs[0].Before(opened.Reset), "the last attempt waited for the window instead of erring")
}
