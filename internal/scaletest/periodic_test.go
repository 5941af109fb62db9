package scaletest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
)

// TestPeriodicDedupAcrossSchedulers shows, on asynq's own scheduler, the
// mechanism that taskhost's scheduler (internal/schedule) is built on; see
// "Periodic tasks" in docs/scaling.md. Two asynq schedulers (two workers) register the same
// "@every 2s" entries, started 1 s apart, as workers on different
// machines would be; robfig/cron's @every counts from each process's start,
// so their ticks do not coincide.
//
//   - With asynq.Unique(ttl) every tick of both schedulers runs: the
//     uniqueness lock is released when the task completes, so it only
//     dedupes while the first copy is still pending or running.
//   - With a task ID derived from the tick, written into the options by the
//     scheduler's PreEnqueueFunc (the bucket of the period the tick falls
//     in), plus asynq.Retention so that a completed copy keeps its ID for a
//     period, each period runs once; the other scheduler's enqueue gets
//     ErrTaskIDConflict.
func TestPeriodicDedupAcrossSchedulers(t *testing.T) {
	t.Parallel()
	const period = 2 * time.Second
	s := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	rec := &logRecorder{}
	runs := newCounter()
	cfg := fastConfig(rec, "s8u", "s8t")
	startServer(t, c, cfg, asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		runs.add(task.Type() + "/" + id)
		return nil
	}))

	var mu sync.Mutex
	attempts := map[string]int{} // task type -> enqueues tried
	refused := map[string]int{}  // task type -> enqueues refused as duplicates
	buckets := map[int64]bool{}  // tick buckets of the s8:tick entry
	newScheduler := func() {
		sch := asynq.NewSchedulerFromRedisClient(c, &asynq.SchedulerOpts{
			Logger: rec, LogLevel: asynq.WarnLevel,
			PreEnqueueFunc: func(task *asynq.Task, opts []asynq.Option) {
				mu.Lock()
				defer mu.Unlock()
				attempts[task.Type()]++
				if task.Type() == "s8:tick" {
					// The last option is the placeholder TaskID.
					b := time.Now().Truncate(period).Unix()
					buckets[b] = true
					opts[len(opts)-1] = asynq.TaskID(fmt.Sprintf("s8:tick:%d", b))
				}
			},
			EnqueueErrorHandler: func(task *asynq.Task, _ []asynq.Option, err error) {
				if errors.Is(err, asynq.ErrDuplicateTask) || errors.Is(err, asynq.ErrTaskIDConflict) {
					mu.Lock()
					refused[task.Type()]++
					mu.Unlock()
				}
			},
		})
		_, err := sch.Register("@every 2s", asynq.NewTask("s8:unique", nil), asynq.Queue("s8u"), asynq.Unique(period-100*time.Millisecond))
		require.NoError(t, err)
		_, err = sch.Register("@every 2s", asynq.NewTask("s8:tick", nil), asynq.Queue("s8t"),
			asynq.Retention(period), asynq.TaskID("placeholder"))
		require.NoError(t, err)
		require.NoError(t, sch.Start())
		t.Cleanup(sch.Shutdown)
	}
	newScheduler()
	time.Sleep(time.Second)
	newScheduler()
	time.Sleep(2*period + 300*time.Millisecond)

	// Let the last enqueues run: every enqueue that was not refused runs.
	count := func() (map[string]int, map[string]int, map[string]int, int) {
		mu.Lock()
		defer mu.Unlock()
		byType := map[string]int{}
		for key := range runs.snapshot() {
			typ, _, _ := strings.Cut(key, "/")
			byType[typ]++
		}
		return byType, maps.Clone(attempts), maps.Clone(refused), len(buckets)
	}
	require.Eventually(t, func() bool {
		byType, att, ref, _ := count()
		return byType["s8:unique"] == att["s8:unique"]-ref["s8:unique"] && byType["s8:tick"] == att["s8:tick"]-ref["s8:tick"]
	}, 5*time.Second, 20*time.Millisecond)
	byType, att, ref, periods := count()
	for key, n := range runs.snapshot() {
		require.Equal(t, 1, n, "task %s", key)
	}
	t.Logf("asynq.Unique: %d enqueues, %d refused, %d runs; tick task ID: %d enqueues, %d refused, %d runs; %d periods",
		att["s8:unique"], ref["s8:unique"], byType["s8:unique"], att["s8:tick"], ref["s8:tick"], byType["s8:tick"], periods)
	require.GreaterOrEqual(t, att["s8:unique"], 4)
	require.Greater(t, byType["s8:unique"], periods,
		"asynq.Unique does not dedupe a periodic task that completes before the other scheduler's tick")
	require.Equal(t, periods, byType["s8:tick"], "a task ID per tick bucket runs each period once")
	require.Positive(t, ref["s8:tick"], "the other scheduler's copy is refused")
}
