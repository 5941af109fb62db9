package taskrun_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskhost/taskhost/internal/taskrun"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func setup(t *testing.T) *taskrun.Runner {
	t.Helper()
	r, err := taskrun.New()
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return r
}

type seen struct {
	id, queue, typ, payload string
	retried, max            int
	left                    time.Duration
}

func record(s *seen, ret error) func(context.Context, *asynq.Task) error {
	return func(ctx context.Context, task *asynq.Task) error {
		s.id, _ = asynq.GetTaskID(ctx)
		s.queue, _ = asynq.GetQueueName(ctx)
		s.retried, _ = asynq.GetRetryCount(ctx)
		s.max, _ = asynq.GetMaxRetry(ctx)
		dl, _ := ctx.Deadline()
		s.left = time.Until(dl)
		s.typ, s.payload = task.Type(), string(task.Payload())
		return ret
	}
}

func TestRunGivesAsynqContext(t *testing.T) {
	t.Parallel()
	r := setup(t)
	boom := errors.New("boom")
	for range 2 { // the same ID twice: the first run's task is gone
		var s seen
		err := r.Run(t.Context(), asynq.NewTask("mail:send", []byte(`{"to":"a"}`)),
			[]asynq.Option{asynq.TaskID("t-1"), asynq.Queue("low"), asynq.MaxRetry(5), taskrun.Retried(3), asynq.Timeout(time.Minute)},
			record(&s, boom))
		require.ErrorIs(t, err, boom)
		require.Equal(t, seen{id: "t-1", queue: "low", typ: "mail:send", payload: `{"to":"a"}`, retried: 3, max: 5, left: s.left}, s)
		require.InDelta(t, time.Minute.Seconds(), s.left.Seconds(), 5)
	}

	var s seen
	require.NoError(t, r.Run(t.Context(), asynq.NewTask("x", nil), nil, record(&s, nil)))
	require.NotEmpty(t, s.id)
	require.Equal(t, "default", s.queue)
	require.Equal(t, 0, s.retried)
	require.Equal(t, 25, s.max, "asynq's default")
}

func TestRunRefusesMoreRetriesThanMax(t *testing.T) {
	t.Parallel()
	r := setup(t)
	err := r.Run(t.Context(), asynq.NewTask("x", nil), []asynq.Option{asynq.MaxRetry(1), taskrun.Retried(2)},
		func(context.Context, *asynq.Task) error { t.Fatal("must not run"); return nil })
	require.ErrorContains(t, err, "Retried(2) is more than the task's max retry (1)")
}

func TestRunContextEndsWithCallers(t *testing.T) {
	t.Parallel()
	r := setup(t)
	ctx, cancel := context.WithCancel(t.Context())
	err := r.Run(ctx, asynq.NewTask("x", nil), nil, func(hctx context.Context, _ *asynq.Task) error {
		cancel()
		<-hctx.Done()
		return hctx.Err()
	})
	require.ErrorIs(t, err, context.Canceled)
}

func TestRunPanicReachesCaller(t *testing.T) {
	t.Parallel()
	r := setup(t)
	require.PanicsWithValue(t, "bad", func() {
		_ = r.Run(t.Context(), asynq.NewTask("x", nil), nil, func(context.Context, *asynq.Task) error { panic("bad") })
	})
	// The runner still works.
	require.NoError(t, r.Run(t.Context(), asynq.NewTask("x", nil), nil, func(context.Context, *asynq.Task) error { return nil }))
}
