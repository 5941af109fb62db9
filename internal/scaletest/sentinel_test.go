package scaletest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
)

// failoverRun sets the size of a failover test: producers enqueue one task
// each per interval for before, the master is SIGKILLed, and they go on for
// after once processing has resumed.
type failoverRun struct {
	producers     int
	interval      time.Duration
	before, after time.Duration
}

// failoverResult is what a failover run counted.
type failoverResult struct {
	acked, enqueueErrors      int
	processed, duplicated     int
	missing, stuckActive      []string // acked, never processed
	completionLost            int      // processed, yet still active on the new master
	syncRetried               int      // completions asynq had to retry
	failover, resume          time.Duration
	lastMissingBeforeKill     time.Duration
	earliestMissingBeforeKill time.Duration
}

func (r failoverResult) String() string {
	return fmt.Sprintf("acked=%d enqueue-errors(retried)=%d processed=%d duplicated=%d missing=%d stuck-active=%d completion-lost=%d completion-retried=%d kill->promotion=%v promotion->resume=%v",
		r.acked, r.enqueueErrors, r.processed, r.duplicated, len(r.missing), len(r.stuckActive), r.completionLost, r.syncRetried,
		r.failover.Round(time.Millisecond), r.resume.Round(time.Millisecond))
}

// TestAsynqSentinelFailover: an asynq server on a go-redis failover client
// processes a steady stream; the master is SIGKILLed; after the sentinels
// promote the replica, processing resumes within 10s without a restart.
func TestAsynqSentinelFailover(t *testing.T) {
	t.Parallel()
	res := runFailover(t, failoverRun{producers: 1, interval: 2 * time.Millisecond, before: time.Second, after: time.Second})
	t.Logf("sentinel failover: %s", res)
}

// sentinelEnv is a Sentinel fixture and a failover client on it.
type sentinelEnv struct {
	sentinel *redistest.Sentinel
	client   *redis.Client
}

func setupSentinel(t *testing.T) *sentinelEnv {
	t.Helper()
	start := time.Now()
	s := redistest.StartSentinel(t)
	t.Logf("master, replica and 3 sentinels ready in %v", time.Since(start).Round(time.Millisecond))
	fc := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    s.MasterName(),
		SentinelAddrs: s.SentinelAddrs(),
		DialTimeout:   300 * time.Millisecond,
		ReadTimeout:   500 * time.Millisecond,
		WriteTimeout:  500 * time.Millisecond,
		PoolTimeout:   500 * time.Millisecond,
		MaxRetries:    -1,
	})
	t.Cleanup(func() { _ = fc.Close() })
	return &sentinelEnv{sentinel: s, client: fc}
}

// stream is the producers' record of acknowledged enqueues.
type stream struct {
	mu     sync.Mutex
	acked  map[string]time.Time
	errors int
}

func (s *stream) ack(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acked[id] = time.Now()
}

func (s *stream) fail() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errors++
}

// produce enqueues tasks until stop is closed. Like taskhost's outbox, it
// retries a failed enqueue with the same task ID, and takes a conflict on
// that ID as proof that an earlier try got through.
func (s *stream) produce(ctx context.Context, cl *asynq.Client, p int, interval time.Duration, stop <-chan struct{}) {
	for seq := 0; ; seq++ {
		id := fmt.Sprintf("p%d-%07d", p, seq)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, err := cl.EnqueueContext(ctx, asynq.NewTask("tick", nil), asynq.Queue("stream"), asynq.TaskID(id), asynq.MaxRetry(5))
			if err == nil || errors.Is(err, asynq.ErrTaskIDConflict) {
				s.ack(id)
				break
			}
			s.fail()
			time.Sleep(20 * time.Millisecond)
		}
		if interval > 0 {
			time.Sleep(interval)
		}
	}
}

func runFailover(t *testing.T, run failoverRun) failoverResult {
	env := setupSentinel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	rec := &logRecorder{}
	runs := newCounter()
	cfg := fastConfig(rec, "stream")
	cfg.Concurrency = 8
	startServer(t, env.client, cfg, countingHandler(runs))
	cl := asynq.NewClientFromRedisClient(env.client)
	t.Cleanup(func() { _ = cl.Close() })

	st := &stream{acked: map[string]time.Time{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := 0; p < run.producers; p++ {
		wg.Add(1)
		go func() { defer wg.Done(); st.produce(ctx, cl, p, run.interval, stop) }()
	}
	stopProducers := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopProducers)

	require.Eventually(t, func() bool { return runs.distinct() > 0 }, 5*time.Second, 10*time.Millisecond, "the stream is processed before the kill")
	time.Sleep(run.before)

	killedAt := time.Now()
	env.sentinel.KillMaster()
	_, err := env.sentinel.WaitFailover(ctx)
	require.NoError(t, err)
	promotedAt := time.Now()

	// Processing has resumed when a task first run after the promotion exists.
	var resumedAt time.Time
	require.Eventually(t, func() bool {
		for id := range runs.snapshot() {
			if at, ok := runs.firstAt(id); ok && at.After(promotedAt) {
				resumedAt = at
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "processing resumed within 10s of the promotion, without a restart")
	time.Sleep(run.after)
	stopProducers()

	st.mu.Lock()
	acked := make(map[string]time.Time, len(st.acked))
	for k, v := range st.acked {
		acked[k] = v
	}
	res := failoverResult{acked: len(acked), enqueueErrors: st.errors,
		failover: promotedAt.Sub(killedAt), resume: resumedAt.Sub(promotedAt)}
	st.mu.Unlock()

	insp := asynq.NewInspectorFromRedisClient(env.client)
	t.Cleanup(func() { _ = insp.Close() })
	// Drain: every task acked after the kill must run; wait for the queue
	// to empty.
	require.Eventually(t, func() bool {
		for id, at := range acked {
			if at.After(killedAt) && runs.get(id) == 0 {
				return false
			}
		}
		qi, err := insp.GetQueueInfo("stream")
		return err == nil && qi.Pending == 0 && qi.Retry == 0 && qi.Scheduled == 0
	}, 20*time.Second, 50*time.Millisecond, "every task acked after the kill is processed")

	// A completion that failed during the outage is retried by asynq's
	// syncer every 5s; give it one round before counting what stays active.
	var tasks []*asynq.TaskInfo
	deadline := time.Now().Add(8 * time.Second)
	for {
		tasks, err = insp.ListActiveTasks("stream", asynq.PageSize(10000))
		require.NoError(t, err)
		if len(tasks) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	active := map[string]bool{}
	for _, ti := range tasks {
		active[ti.ID] = true
	}
	res.syncRetried = rec.count("Will retry syncing")
	processed := runs.snapshot()
	res.processed = len(processed)
	for id, n := range processed {
		if n > 1 {
			res.duplicated++
		}
		if active[id] {
			res.completionLost++
		}
	}
	var missingAcks []time.Time
	for id, at := range acked {
		if processed[id] > 0 {
			continue
		}
		if active[id] {
			res.stuckActive = append(res.stuckActive, id)
			continue
		}
		res.missing = append(res.missing, id)
		missingAcks = append(missingAcks, at)
	}
	sort.Slice(missingAcks, func(i, j int) bool { return missingAcks[i].Before(missingAcks[j]) })
	for _, at := range missingAcks {
		require.True(t, at.Before(killedAt), "only writes acked by the old master can be lost")
	}
	if len(missingAcks) > 0 {
		res.earliestMissingBeforeKill = killedAt.Sub(missingAcks[0])
		res.lastMissingBeforeKill = killedAt.Sub(missingAcks[len(missingAcks)-1])
		t.Logf("missing tasks were acked %v to %v before the kill", res.lastMissingBeforeKill, res.earliestMissingBeforeKill)
		require.Less(t, res.earliestMissingBeforeKill, time.Second,
			"asynchronous replication loses only the last moment of writes, not older ones")
	}
	require.Less(t, res.resume, 10*time.Second)
	return res
}
