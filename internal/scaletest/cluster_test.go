package scaletest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
)

// clusterEnv is one Redis Cluster shared by the subtests of
// TestAsynqOnCluster; each subtest uses its own queues.
type clusterEnv struct {
	cluster *redistest.Cluster
	client  *redis.ClusterClient
	insp    *asynq.Inspector
	slots   []redis.ClusterSlot
}

func setupCluster(t *testing.T) *clusterEnv {
	t.Helper()
	start := time.Now()
	c := redistest.StartCluster(t)
	t.Logf("cluster of 6 nodes ready in %v", time.Since(start).Round(time.Millisecond))
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:        c.Addrs(),
		DialTimeout:  500 * time.Millisecond,
		ReadTimeout:  time.Second,
		WriteTimeout: time.Second,
		PoolTimeout:  time.Second,
		MaxRetries:   -1,
	})
	t.Cleanup(func() { _ = cc.Close() })
	insp := asynq.NewInspectorFromRedisClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	slots, err := cc.ClusterSlots(ctx).Result()
	require.NoError(t, err)
	require.Len(t, slots, 3)
	return &clusterEnv{cluster: c, client: cc, insp: insp, slots: slots}
}

// masterOf is the address of the master that holds queue q's keys.
func (e *clusterEnv) masterOf(t *testing.T, q string) string {
	t.Helper()
	slot, err := e.client.ClusterKeySlot(context.Background(), "asynq:{"+q+"}").Result()
	require.NoError(t, err)
	for _, s := range e.slots {
		if int64(s.Start) <= slot && slot <= int64(s.End) {
			return s.Nodes[0].Addr
		}
	}
	t.Fatalf("no master for slot %d", slot)
	return ""
}

// queuesOnAllMasters picks n queue names, starting with prefix, whose
// {queue} hash tags land on all three masters.
func (e *clusterEnv) queuesOnAllMasters(t *testing.T, prefix string, n int) []string {
	t.Helper()
	var picked []string
	seen := map[string]bool{}
	for i := 0; len(picked) < n && i < 1000; i++ {
		q := fmt.Sprintf("%s%d", prefix, i)
		m := e.masterOf(t, q)
		if len(seen) < 3 && seen[m] {
			continue // fill each master first
		}
		seen[m] = true
		picked = append(picked, q)
	}
	require.Len(t, seen, 3)
	return picked
}

func (e *clusterEnv) asynqClient(t *testing.T) *asynq.Client {
	t.Helper()
	c := asynq.NewClientFromRedisClient(e.client)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func requireNoAsynqErrors(t *testing.T, rec *logRecorder, allowed ...string) {
	t.Helper()
	var bad []string
	for _, l := range rec.Lines() {
		ok := false
		for _, a := range allowed {
			ok = ok || strings.Contains(l, a)
		}
		if !ok {
			bad = append(bad, l)
		}
	}
	require.Empty(t, bad, "asynq logged warnings or errors on the cluster")
}

// TestAsynqOnCluster runs each asynq v0.26.0 feature against a real Redis
// Cluster (3 masters, 3 replicas). Each subtest is a row of the table in
// docs/scaling.md; a regression in asynq or go-redis fails the row.
func TestAsynqOnCluster(t *testing.T) {
	t.Parallel()
	env := setupCluster(t)
	ctx := context.Background()

	t.Run("enqueue and process on five queues over three masters", func(t *testing.T) {
		t.Parallel()
		queues := env.queuesOnAllMasters(t, "spread", 5)
		masters := map[string]bool{}
		for _, q := range queues {
			nodes, err := env.insp.ClusterNodes(q)
			require.NoError(t, err, "Inspector.ClusterNodes")
			require.NotEmpty(t, nodes)
			require.Equal(t, env.masterOf(t, q), nodes[0].Addr, "the inspector names the owning master first")
			masters[nodes[0].Addr] = true
		}
		require.Len(t, masters, 3)

		rec := &logRecorder{}
		runs := newCounter()
		startServer(t, env.client, fastConfig(rec, queues...), countingHandler(runs))
		cl := env.asynqClient(t)
		const perQueue = 20
		for _, q := range queues {
			for i := 0; i < perQueue; i++ {
				_, err := cl.EnqueueContext(ctx, asynq.NewTask("count", nil), asynq.Queue(q), asynq.TaskID(fmt.Sprintf("%s-%d", q, i)))
				require.NoError(t, err)
			}
		}
		require.Eventually(t, func() bool { return runs.distinct() == perQueue*len(queues) }, 15*time.Second, 20*time.Millisecond)
		for id, n := range runs.snapshot() {
			require.Equal(t, 1, n, "task %s ran more than once", id)
		}
		for _, q := range queues {
			require.Eventually(t, func() bool {
				qi, err := env.insp.GetQueueInfo(q)
				return err == nil && qi.Processed == perQueue && qi.Pending == 0 && qi.Active == 0
			}, 5*time.Second, 20*time.Millisecond, "queue info of %s", q)
		}
		requireNoAsynqErrors(t, rec)
	})

	t.Run("retry then archive", func(t *testing.T) {
		t.Parallel()
		q := "retry"
		rec := &logRecorder{}
		var mu sync.Mutex
		retried := map[string]int{}
		startServer(t, env.client, fastConfig(rec, q), asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
			id, _ := asynq.GetTaskID(ctx)
			n, _ := asynq.GetRetryCount(ctx)
			mu.Lock()
			retried[id] = n
			mu.Unlock()
			if id == "fails-once" && n == 0 {
				return errors.New("first attempt fails")
			}
			if id == "always-fails" {
				return errors.New("always fails")
			}
			return nil
		}))
		cl := env.asynqClient(t)
		_, err := cl.Enqueue(asynq.NewTask("retry", nil), asynq.Queue(q), asynq.TaskID("fails-once"), asynq.MaxRetry(3))
		require.NoError(t, err)
		_, err = cl.Enqueue(asynq.NewTask("retry", nil), asynq.Queue(q), asynq.TaskID("always-fails"), asynq.MaxRetry(1))
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return retried["fails-once"] == 1 && retried["always-fails"] == 1
		}, 10*time.Second, 20*time.Millisecond, "both tasks ran a second time, as a retry")
		require.Eventually(t, func() bool {
			archived, err := env.insp.ListArchivedTasks(q)
			return err == nil && len(archived) == 1 && archived[0].ID == "always-fails" &&
				archived[0].LastErr == "always fails"
		}, 5*time.Second, 20*time.Millisecond, "the task out of retries is archived")
		info, err := env.insp.GetTaskInfo(q, "fails-once")
		if err == nil {
			require.NotEqual(t, asynq.TaskStateRetry, info.State)
		}
		requireNoAsynqErrors(t, rec, "always fails", "first attempt fails", "Retry exhausted")
	})

	t.Run("scheduled with ProcessIn and ProcessAt", func(t *testing.T) {
		t.Parallel()
		q := "sched"
		rec := &logRecorder{}
		runs := newCounter()
		startServer(t, env.client, fastConfig(rec, q), countingHandler(runs))
		cl := env.asynqClient(t)
		start := time.Now()
		info, err := cl.Enqueue(asynq.NewTask("later", nil), asynq.Queue(q), asynq.TaskID("in"), asynq.ProcessIn(time.Second))
		require.NoError(t, err)
		require.Equal(t, asynq.TaskStateScheduled, info.State)
		_, err = cl.Enqueue(asynq.NewTask("later", nil), asynq.Queue(q), asynq.TaskID("at"), asynq.ProcessAt(start.Add(time.Second)))
		require.NoError(t, err)
		_, err = cl.Enqueue(asynq.NewTask("later", nil), asynq.Queue(q), asynq.TaskID("in-unique"), asynq.ProcessIn(time.Second), asynq.Unique(time.Minute))
		require.NoError(t, err)
		require.Eventually(t, func() bool { return runs.distinct() == 3 }, 10*time.Second, 20*time.Millisecond)
		for _, id := range []string{"in", "at", "in-unique"} {
			at, _ := runs.firstAt(id)
			// asynq stores the due time in whole Unix seconds.
			due := start.Add(time.Second).Truncate(time.Second)
			require.False(t, at.Before(due), "%s ran at %v, before %v", id, at, due)
		}
		requireNoAsynqErrors(t, rec)
	})

	t.Run("unique and task ID conflicts", func(t *testing.T) {
		t.Parallel()
		q := "unique"
		cl := env.asynqClient(t)
		task := asynq.NewTask("uniq", []byte("same"))
		_, err := cl.Enqueue(task, asynq.Queue(q), asynq.Unique(time.Minute))
		require.NoError(t, err)
		_, err = cl.Enqueue(task, asynq.Queue(q), asynq.Unique(time.Minute))
		require.ErrorIs(t, err, asynq.ErrDuplicateTask)
		_, err = cl.Enqueue(task, asynq.Queue(q), asynq.Unique(time.Minute), asynq.ProcessIn(time.Hour))
		require.ErrorIs(t, err, asynq.ErrDuplicateTask, "the lock covers scheduled enqueues too")

		_, err = cl.Enqueue(asynq.NewTask("id", nil), asynq.Queue(q), asynq.TaskID("fixed"))
		require.NoError(t, err)
		_, err = cl.Enqueue(asynq.NewTask("id", nil), asynq.Queue(q), asynq.TaskID("fixed"))
		require.ErrorIs(t, err, asynq.ErrTaskIDConflict)

		rec := &logRecorder{}
		runs := newCounter()
		startServer(t, env.client, fastConfig(rec, q), countingHandler(runs))
		require.Eventually(t, func() bool { return runs.distinct() == 2 }, 10*time.Second, 20*time.Millisecond)
		require.Eventually(t, func() bool {
			_, err := cl.Enqueue(task, asynq.Queue(q), asynq.Unique(time.Minute))
			return err == nil
		}, 5*time.Second, 50*time.Millisecond, "success releases the unique lock")
		requireNoAsynqErrors(t, rec)
	})

	t.Run("group aggregation", func(t *testing.T) {
		t.Parallel()
		q := "groups"
		rec := &logRecorder{}
		cfg := fastConfig(rec, q)
		cfg.GroupGracePeriod = time.Second // asynq's minimum
		cfg.GroupMaxSize = 3
		cfg.GroupAggregator = asynq.GroupAggregatorFunc(func(group string, tasks []*asynq.Task) *asynq.Task {
			parts := make([]string, len(tasks))
			for i, tk := range tasks {
				parts[i] = string(tk.Payload())
			}
			sort.Strings(parts)
			return asynq.NewTask("batch", []byte(group+":"+strings.Join(parts, ",")))
		})
		got := make(chan string, 4)
		startServer(t, env.client, cfg, asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
			got <- task.Type() + "=" + string(task.Payload())
			return nil
		}))
		cl := env.asynqClient(t)
		for i, p := range []string{"a", "b"} {
			_, err := cl.Enqueue(asynq.NewTask("item", []byte(p)), asynq.Queue(q), asynq.Group("g1"), asynq.TaskID(fmt.Sprintf("g1-%d", i)))
			require.NoError(t, err)
		}
		_, err := cl.Enqueue(asynq.NewTask("item", []byte("c")), asynq.Queue(q), asynq.Group("g1"), asynq.Unique(time.Minute))
		require.NoError(t, err)
		_, err = cl.Enqueue(asynq.NewTask("item", []byte("c")), asynq.Queue(q), asynq.Group("g1"), asynq.Unique(time.Minute))
		require.ErrorIs(t, err, asynq.ErrDuplicateTask)
		select {
		case s := <-got:
			require.Equal(t, "batch=g1:a,b,c", s)
		case <-time.After(10 * time.Second):
			t.Fatal("no aggregated task within 10s")
		}
		select {
		case s := <-got:
			t.Fatalf("unexpected extra task %q", s)
		case <-time.After(300 * time.Millisecond):
		}
		requireNoAsynqErrors(t, rec)
	})

	t.Run("inspector without a server", func(t *testing.T) {
		t.Parallel()
		q := "inspect"
		cl := env.asynqClient(t)
		for _, id := range []string{"p1", "p2", "p3"} {
			_, err := cl.Enqueue(asynq.NewTask("x", []byte(id)), asynq.Queue(q), asynq.TaskID(id))
			require.NoError(t, err)
		}
		_, err := cl.Enqueue(asynq.NewTask("x", nil), asynq.Queue(q), asynq.TaskID("s1"), asynq.ProcessIn(time.Hour))
		require.NoError(t, err)
		for _, id := range []string{"a1", "a2"} {
			_, err := cl.Enqueue(asynq.NewTask("x", nil), asynq.Queue(q), asynq.TaskID(id), asynq.Group("g"))
			require.NoError(t, err)
		}

		queues, err := env.insp.Queues()
		require.NoError(t, err, "Queues reads the global set asynq:queues")
		require.Contains(t, queues, q)
		qi, err := env.insp.GetQueueInfo(q)
		require.NoError(t, err)
		require.Equal(t, 3, qi.Pending)
		require.Equal(t, 1, qi.Scheduled)
		require.Equal(t, 2, qi.Aggregating)
		require.Equal(t, 1, qi.Groups)
		require.Positive(t, qi.MemoryUsage)
		groups, err := env.insp.Groups(q)
		require.NoError(t, err)
		require.Len(t, groups, 1)
		require.Equal(t, 2, groups[0].Size)
		agg, err := env.insp.ListAggregatingTasks(q, "g")
		require.NoError(t, err)
		require.Len(t, agg, 2)
		pending, err := env.insp.ListPendingTasks(q)
		require.NoError(t, err)
		require.Len(t, pending, 3)
		sched, err := env.insp.ListScheduledTasks(q)
		require.NoError(t, err)
		require.Len(t, sched, 1)
		ti, err := env.insp.GetTaskInfo(q, "p1")
		require.NoError(t, err)
		require.Equal(t, asynq.TaskStatePending, ti.State)

		require.NoError(t, env.insp.UpdateTaskPayload(q, "s1", []byte("new")))
		ti, err = env.insp.GetTaskInfo(q, "s1")
		require.NoError(t, err)
		require.Equal(t, "new", string(ti.Payload))
		require.NoError(t, env.insp.RunTask(q, "s1"))
		require.NoError(t, env.insp.ArchiveTask(q, "p1"))
		archived, err := env.insp.ListArchivedTasks(q)
		require.NoError(t, err)
		require.Len(t, archived, 1)
		n, err := env.insp.RunAllArchivedTasks(q)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.NoError(t, env.insp.DeleteTask(q, "p2"))
		_, err = env.insp.GetTaskInfo(q, "p2")
		require.ErrorIs(t, err, asynq.ErrTaskNotFound)
		n, err = env.insp.RunAllAggregatingTasks(q, "g")
		require.NoError(t, err)
		require.Equal(t, 2, n)

		require.NoError(t, env.insp.PauseQueue(q))
		qi, err = env.insp.GetQueueInfo(q)
		require.NoError(t, err)
		require.True(t, qi.Paused)
		require.NoError(t, env.insp.UnpauseQueue(q))
		hist, err := env.insp.History(q, 2)
		require.NoError(t, err)
		require.Len(t, hist, 2)

		n, err = env.insp.ArchiveAllPendingTasks(q)
		require.NoError(t, err)
		require.Equal(t, 5, n, "p1 p3 s1 a1 a2")
		require.Error(t, env.insp.DeleteQueue(q, false), "a non-empty queue is not deleted")
		n, err = env.insp.DeleteAllArchivedTasks(q)
		require.NoError(t, err)
		require.Equal(t, 5, n)
		require.NoError(t, env.insp.DeleteQueue(q, false))
		queues, err = env.insp.Queues()
		require.NoError(t, err)
		require.NotContains(t, queues, q)

		slot, err := env.insp.ClusterKeySlot(q)
		require.NoError(t, err)
		want, err := env.client.ClusterKeySlot(ctx, "asynq:{"+q+"}").Result()
		require.NoError(t, err)
		require.Equal(t, want, slot)
	})

	t.Run("servers, workers and cancel", func(t *testing.T) {
		t.Parallel()
		q := "servers"
		rec := &logRecorder{}
		canceled := make(chan error, 1)
		startServer(t, env.client, fastConfig(rec, q), asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
			<-ctx.Done()
			canceled <- ctx.Err()
			return ctx.Err()
		}))
		cl := env.asynqClient(t)
		_, err := cl.Enqueue(asynq.NewTask("block", nil), asynq.Queue(q), asynq.TaskID("blocker"), asynq.MaxRetry(0))
		require.NoError(t, err)
		// The heartbeat, every 5s, writes asynq:servers and asynq:workers
		// (global keys) and per-server keys hashed on host:pid:id.
		require.Eventually(t, func() bool {
			servers, err := env.insp.Servers()
			if err != nil {
				return false
			}
			for _, s := range servers {
				if _, ok := s.Queues[q]; ok {
					for _, w := range s.ActiveWorkers {
						if w.TaskID == "blocker" {
							return true
						}
					}
				}
			}
			return false
		}, 12*time.Second, 100*time.Millisecond, "Inspector.Servers shows the server and its active task")
		for _, k := range []string{"asynq:servers", "asynq:workers"} {
			n, err := env.client.ZCard(ctx, k).Result()
			require.NoError(t, err)
			require.Positive(t, n, k)
		}
		active, err := env.insp.ListActiveTasks(q)
		require.NoError(t, err)
		require.Len(t, active, 1)

		require.NoError(t, env.insp.CancelProcessing("blocker"), "publish on asynq:cancel")
		select {
		case err := <-canceled:
			require.ErrorIs(t, err, context.Canceled)
		case <-time.After(5 * time.Second):
			t.Fatal("the cancel message did not reach the server through the cluster's pub/sub")
		}
		requireNoAsynqErrors(t, rec, "Retry exhausted for task id=blocker")
	})

	t.Run("periodic tasks from the scheduler", func(t *testing.T) {
		t.Parallel()
		q := "periodic"
		rec := &logRecorder{}
		runs := newCounter()
		startServer(t, env.client, fastConfig(rec, q), asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
			id, _ := asynq.GetTaskID(ctx)
			runs.add(id)
			return nil
		}))
		sch := asynq.NewSchedulerFromRedisClient(env.client, &asynq.SchedulerOpts{
			// A heartbeat under 1s makes asynq send EXPIRE a fractional TTL,
			// which Redis refuses (not a cluster problem).
			HeartbeatInterval: time.Second, Logger: rec, LogLevel: asynq.WarnLevel,
		})
		entryID, err := sch.Register("@every 1s", asynq.NewTask("tick", nil), asynq.Queue(q))
		require.NoError(t, err)
		require.NoError(t, sch.Start())
		stopped := false
		t.Cleanup(func() {
			if !stopped {
				sch.Shutdown()
			}
		})
		require.Eventually(t, func() bool { return runs.distinct() >= 2 }, 6*time.Second, 50*time.Millisecond)
		entries, err := env.insp.SchedulerEntries()
		require.NoError(t, err)
		found := false
		for _, e := range entries {
			found = found || (e.ID == entryID && e.Spec == "@every 1s")
		}
		require.True(t, found, "Inspector.SchedulerEntries lists the entry")
		events, err := env.insp.ListSchedulerEnqueueEvents(entryID)
		require.NoError(t, err)
		require.NotEmpty(t, events)
		sch.Shutdown()
		stopped = true
		entries, err = env.insp.SchedulerEntries()
		require.NoError(t, err)
		for _, e := range entries {
			require.NotEqual(t, entryID, e.ID, "shutdown clears the entries")
		}
		// Shutdown of a scheduler on a shared client always logs this.
		requireNoAsynqErrors(t, rec, "redis connection is shared")
	})

	t.Run("two schedulers each enqueue every tick", func(t *testing.T) {
		t.Parallel()
		// asynq's scheduler has no leader election: each process that runs
		// one enqueues its own copy of each periodic task.
		q := "twoschedulers"
		rec := &logRecorder{}
		runs := newCounter()
		startServer(t, env.client, fastConfig(rec, q), countingHandler(runs))
		start := time.Now()
		for i := 0; i < 2; i++ {
			sch := asynq.NewSchedulerFromRedisClient(env.client, &asynq.SchedulerOpts{
				HeartbeatInterval: time.Second, Logger: rec, LogLevel: asynq.WarnLevel,
			})
			_, err := sch.Register("@every 1s", asynq.NewTask("tick", nil), asynq.Queue(q))
			require.NoError(t, err)
			require.NoError(t, sch.Start())
			t.Cleanup(sch.Shutdown)
		}
		require.Eventually(t, func() bool { return runs.distinct() >= 4 }, 6*time.Second, 20*time.Millisecond)
		require.Less(t, time.Since(start), 3500*time.Millisecond, "4 runs need two ticks of two schedulers")
	})

	t.Run("retention and janitor", func(t *testing.T) {
		t.Parallel()
		q := "retention"
		rec := &logRecorder{}
		runs := newCounter()
		startServer(t, env.client, fastConfig(rec, q), countingHandler(runs))
		cl := env.asynqClient(t)
		_, err := cl.Enqueue(asynq.NewTask("keep", nil), asynq.Queue(q), asynq.TaskID("kept"), asynq.Retention(1500*time.Millisecond))
		require.NoError(t, err)
		_, err = cl.Enqueue(asynq.NewTask("keep", nil), asynq.Queue(q), asynq.TaskID("kept-unique"), asynq.Retention(1500*time.Millisecond), asynq.Unique(time.Minute))
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			done, err := env.insp.ListCompletedTasks(q)
			return err == nil && len(done) == 2
		}, 10*time.Second, 20*time.Millisecond, "completed tasks are kept for their retention")
		require.Eventually(t, func() bool {
			done, err := env.insp.ListCompletedTasks(q)
			return err == nil && len(done) == 0
		}, 10*time.Second, 50*time.Millisecond, "the janitor deletes them after it")
		requireNoAsynqErrors(t, rec)
	})

	t.Run("lease expiry is recovered", func(t *testing.T) {
		t.Parallel()
		q := "lease"
		cl := env.asynqClient(t)
		_, err := cl.Enqueue(asynq.NewTask("crash", nil), asynq.Queue(q), asynq.TaskID("orphan"), asynq.MaxRetry(3))
		require.NoError(t, err)
		// Leave the task as a SIGKILLed worker would: active, with a lease
		// that ran out long ago (asynq v0.26.0 key layout; one slot).
		_, err = env.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.RPopLPush(ctx, "asynq:{"+q+"}:pending", "asynq:{"+q+"}:active")
			p.HSet(ctx, "asynq:{"+q+"}:t:orphan", "state", "active")
			p.ZAdd(ctx, "asynq:{"+q+"}:lease", redis.Z{Score: float64(time.Now().Add(-2 * time.Minute).Unix()), Member: "orphan"})
			return nil
		})
		require.NoError(t, err)
		active, err := env.insp.ListActiveTasks(q)
		require.NoError(t, err)
		require.Len(t, active, 1)

		rec := &logRecorder{}
		retries := make(chan int, 1)
		startServer(t, env.client, fastConfig(rec, q), asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
			n, _ := asynq.GetRetryCount(ctx)
			retries <- n
			return nil
		}))
		select {
		case n := <-retries:
			require.Equal(t, 1, n, "the recoverer counts the lost run as a failed attempt")
		case <-time.After(10 * time.Second):
			t.Fatal("the recoverer did not requeue the task with the expired lease")
		}
		requireNoAsynqErrors(t, rec)
	})

	t.Run("queue name starting with a closing brace is refused by Redis", func(t *testing.T) {
		t.Parallel()
		// "asynq:{}odd}:pending" has the empty hash tag "{}", so Redis hashes
		// each whole key and a script's keys land in different slots.
		// taskhost must refuse such names in cluster mode.
		cl := env.asynqClient(t)
		_, err := cl.Enqueue(asynq.NewTask("x", nil), asynq.Queue("}odd"))
		require.ErrorContains(t, err, "CROSSSLOT")
		_, err = cl.Enqueue(asynq.NewTask("x", nil), asynq.Queue("a}b"))
		require.NoError(t, err, "a brace after the first character only narrows the hash tag")
	})

	t.Run("shutdown requeues an unfinished task", func(t *testing.T) {
		t.Parallel()
		q := "requeue"
		rec := &logRecorder{}
		cfg := fastConfig(rec, q)
		cfg.ShutdownTimeout = 200 * time.Millisecond
		started, release := make(chan struct{}), make(chan struct{})
		srv := asynq.NewServerFromRedisClient(env.client, cfg)
		require.NoError(t, srv.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
			close(started)
			<-release
			return nil
		})))
		cl := env.asynqClient(t)
		_, err := cl.Enqueue(asynq.NewTask("slow", nil), asynq.Queue(q), asynq.TaskID("slow"))
		require.NoError(t, err)
		<-started
		srv.Shutdown()
		close(release)
		ti, err := env.insp.GetTaskInfo(q, "slow")
		require.NoError(t, err)
		require.Equal(t, asynq.TaskStatePending, ti.State, "the unfinished task is back in pending")
		require.Equal(t, 1, rec.count("Quitting worker"), rec.Lines())

		rec2 := &logRecorder{}
		runs := newCounter()
		startServer(t, env.client, fastConfig(rec2, q), countingHandler(runs))
		require.Eventually(t, func() bool { return runs.get("slow") == 1 }, 5*time.Second, 20*time.Millisecond)
		requireNoAsynqErrors(t, rec2)
	})
}
