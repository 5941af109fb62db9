package taskhost_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
)

// The runtime's Client across an outage, switched by its own monitor: held
// while Redis is down, drained exactly once, with IDs and options, on the
// ready transition.

// outboxQueue is a queue the worker does not consume, so what the drain
// delivered stays there to be counted.
const outboxQueue = "qs-outbox"

func outboxOutage(t *testing.T, frozen bool) {
	s := redistest.Start(t)
	cfg := testConfig(t, s.Addr())
	rt := startRuntime(t, cfg)
	waitState(t, rt, 5*time.Second, "ready")
	client := rt.Client()
	ctx := context.Background()
	task := func(i int) *asynq.Task { return asynq.NewTask("qs:outbox", []byte(fmt.Sprintf(`{"n":%d}`, i))) }

	// Ready: straight to Redis.
	res, err := client.Submit(ctx, task(-1), asynq.Queue(outboxQueue))
	require.NoError(t, err)
	require.False(t, res.Held)
	want := map[string]bool{}
	if frozen {
		want[res.Info.ID] = true // a killed Redis restarts empty and loses it
	}

	downAt := time.Now()
	if frozen {
		s.Pause()
		t.Cleanup(s.Resume)
	} else {
		s.Kill()
	}
	// Before the monitor notices, an enqueue may wait for its timeout, then
	// is held. Against a frozen Redis its command may still be in the
	// socket and run on resume: the drain's replay must then not duplicate it.
	var slowest time.Duration
	i := 0
	for rt.Ready() {
		require.Less(t, time.Since(downAt), 10*time.Second, "the monitor did not notice")
		begin := time.Now()
		res, err := client.Submit(ctx, task(i), asynq.Queue(outboxQueue))
		slowest = max(slowest, time.Since(begin))
		require.NoError(t, err)
		require.True(t, res.Held, "task %d not held while Redis was down", i)
		want[res.Info.ID] = true
		i++
		time.Sleep(time.Millisecond)
	}
	t.Logf("before detection: %d enqueues, slowest %s", i, slowest.Round(time.Millisecond))
	require.LessOrEqual(t, slowest, beforeDetectionBound)

	// Not ready: held at once, with the caller's IDs and generated ones.
	const n = 500
	slowest = 0
	var scheduledID string
	for j := range n {
		opts := []asynq.Option{asynq.Queue(outboxQueue)}
		if j%2 == 0 {
			opts = append(opts, asynq.TaskID(fmt.Sprintf("own-%d", j)))
		}
		if j == 1 {
			opts = append(opts, asynq.ProcessIn(time.Hour))
		}
		begin := time.Now()
		res, err := client.Submit(ctx, task(1000+j), opts...)
		slowest = max(slowest, time.Since(begin))
		require.NoError(t, err)
		require.True(t, res.Held)
		if j%2 == 0 {
			require.Equal(t, fmt.Sprintf("own-%d", j), res.Info.ID)
		}
		if j == 1 {
			scheduledID = res.Info.ID
		}
		want[res.Info.ID] = true
	}
	depth, _ := rt.OutboxDepth()
	t.Logf("down: %d enqueues held, slowest %s; outbox depth %d", n, slowest, depth)
	require.Less(t, slowest, afterDownBound)
	require.Equal(t, n+i, depth)

	// Back: the ready transition drains the outbox.
	if frozen {
		s.Resume()
	} else {
		s.MustRestart(t)
	}
	waitState(t, rt, 5*time.Second, "ready")
	readyAt := time.Now()
	require.Eventually(t, func() bool { d, _ := rt.OutboxDepth(); return d == 0 }, 5*time.Second, 5*time.Millisecond,
		"the outbox was not drained")
	t.Logf("drained %d tasks %s after ready", n+i, time.Since(readyAt).Round(time.Millisecond))

	// Counted in Redis itself: after an empty restart asynq's queue set
	// does not list the queue (see TestWorkerQueuesRegisteredAfterEmptyRestart).
	admin := adminClient(t, s.Addr())
	pending, err := admin.LRange(ctx, "asynq:{"+outboxQueue+"}:pending", 0, -1).Result()
	require.NoError(t, err)
	scheduled, err := admin.ZRangeWithScores(ctx, "asynq:{"+outboxQueue+"}:scheduled", 0, -1).Result()
	require.NoError(t, err)
	got := map[string]int{}
	for _, id := range pending {
		got[id]++
	}
	for _, z := range scheduled {
		got[z.Member.(string)]++
	}
	for id := range want {
		require.Equal(t, 1, got[id], "task %s delivered %d times", id, got[id])
	}
	require.Len(t, got, len(want), "unexpected tasks in Redis")
	require.Len(t, scheduled, 1)
	require.Equal(t, scheduledID, scheduled[0].Member)
	require.WithinDuration(t, downAt.Add(time.Hour), time.Unix(int64(scheduled[0].Score), 0), 15*time.Second,
		"ProcessIn kept as the absolute time it meant at Submit")
	if frozen {
		// Redis kept its data, so asynq's Inspector sees the queue too.
		n, err := asynq.NewInspectorFromRedisClient(admin).ListPendingTasks(outboxQueue, asynq.PageSize(5000))
		require.NoError(t, err)
		require.Len(t, n, len(pending))
	}

	// And straight to Redis again.
	res, err = client.Submit(ctx, task(-2), asynq.Queue(outboxQueue))
	require.NoError(t, err)
	require.False(t, res.Held)
}

func TestOutboxRedisKilled(t *testing.T) {
	t.Parallel()
	outboxOutage(t, false)
}

func TestOutboxRedisFrozen(t *testing.T) {
	t.Parallel()
	outboxOutage(t, true)
}

// TestWorkerQueuesRegisteredAfterEmptyRestart: asynq's clients register a
// queue in asynq:queues only on their first enqueue in a process, so after
// Redis came back empty the Inspector (health, /ui) would not list the
// worker's queues. The runtime registers them again on ready.
func TestWorkerQueuesRegisteredAfterEmptyRestart(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	cfg := testConfig(t, s.Addr())
	cfg.Worker.Queues = map[string]int{"default": 1, "qs-critical": 3}
	rt := startRuntime(t, cfg)
	waitState(t, rt, 5*time.Second, "ready")
	s.Kill()
	waitState(t, rt, 5*time.Second, "down")
	s.MustRestart(t)
	waitState(t, rt, 5*time.Second, "ready")
	insp := asynq.NewInspectorFromRedisClient(adminClient(t, s.Addr()))
	require.Eventually(t, func() bool {
		qs, err := insp.Queues()
		return err == nil && len(qs) == 2
	}, 2*time.Second, 10*time.Millisecond, "the worker's queues are not listed after an empty restart")
	_, err := insp.GetQueueInfo("qs-critical")
	require.NoError(t, err)
}
