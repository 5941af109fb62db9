package scaletest

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
)

// TestAsynqCompletionFailedDuringOutageIsNotResynced pins an asynq v0.26.0
// behaviour that explains duplicates after a failover: when marking a task
// done fails because Redis is unreachable, asynq hands the retry to its
// syncer, but the retry reuses a context that was already canceled, so it
// never succeeds. The task stays active until its lease runs out and the
// recoverer runs it again. If this test fails, asynq fixed it: update the
// failover section of docs/scaling.md, and see whether the completion
// retries of recoverer.go (which fix it in taskhost) are still needed.
func TestAsynqCompletionFailedDuringOutageIsNotResynced(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), DialTimeout: 300 * time.Millisecond,
		ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	rec := &logRecorder{}
	started, release := make(chan struct{}), make(chan struct{})
	srv := asynq.NewServerFromRedisClient(c, fastConfig(rec, "done"))
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		close(started)
		<-release
		return nil
	})))
	t.Cleanup(srv.Shutdown)
	cl := asynq.NewClientFromRedisClient(c)
	t.Cleanup(func() { _ = cl.Close() })
	insp := asynq.NewInspectorFromRedisClient(c)
	t.Cleanup(func() { _ = insp.Close() })

	_, err := cl.Enqueue(asynq.NewTask("x", nil), asynq.Queue("done"), asynq.TaskID("one"))
	require.NoError(t, err)
	<-started
	s.Pause() // the handler succeeds while Redis does not answer
	close(release)
	require.Eventually(t, func() bool { return rec.count("Will retry syncing") == 1 }, 3*time.Second, 20*time.Millisecond)
	s.Resume()

	// The syncer retries every 5s; one round is enough if the retry worked.
	require.Never(t, func() bool {
		active, err := insp.ListActiveTasks("done")
		return err == nil && len(active) == 0
	}, 6500*time.Millisecond, 200*time.Millisecond, "asynq's syncer now completes the task: update docs/scaling.md")
}
