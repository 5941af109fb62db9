package scaletest

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/health"
	"github.com/taskhost/taskhost/internal/redistest"
)

// submission is one task the producer handed to the runtime's Client.
type submission struct {
	at   time.Time // when Submit returned without error
	held bool      // the outbox held it (Redis not ready, or the enqueue failed)
}

// outboxStream submits s8:rec tasks through a runtime's Client, with fresh
// IDs, and records what Submit answered.
type outboxStream struct {
	mu   sync.Mutex
	subs map[string]submission
	errs []string
}

func (s *outboxStream) run(ctx context.Context, c *taskhost.Client, prefix, queue string, interval time.Duration, stop <-chan struct{}) {
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		id := fmt.Sprintf("%s%07d", prefix, seq)
		res, err := c.Submit(ctx, asynq.NewTask(s8RecordType, nil), asynq.Queue(queue), asynq.TaskID(id), asynq.MaxRetry(5))
		s.mu.Lock()
		if err != nil {
			s.errs = append(s.errs, err.Error())
		} else {
			s.subs[id] = submission{at: time.Now(), held: res.Held}
		}
		s.mu.Unlock()
		if interval > 0 {
			time.Sleep(interval)
		}
	}
}

func (s *outboxStream) snapshot() (map[string]submission, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]submission, len(s.subs))
	for k, v := range s.subs {
		m[k] = v
	}
	return m, append([]string(nil), s.errs...)
}

// TestRuntimeSentinelFailover runs the taskhost runtime itself with
// redis.mode sentinel on a steady stream submitted through its Client
// (the outbox), SIGKILLs the master, and checks that after the sentinels
// promote the replica the same runtime, never restarted, resumes within
// 10 s; that every task the outbox held during the failover is processed
// exactly once; and that /healthz names the new master. It reports what
// was lost or run twice across the failover; docs/scaling.md explains it.
func TestRuntimeSentinelFailover(t *testing.T) {
	t.Parallel()
	runRuntimeFailover(t, runtimeFailoverRun{producers: 1, interval: 2 * time.Millisecond, before: 500 * time.Millisecond, after: time.Second})
}

// runtimeFailoverRun sets the size of a runtime failover run: producers
// submit one task each per interval, for before the kill and after once
// processing has resumed.
type runtimeFailoverRun struct {
	producers     int
	interval      time.Duration
	before, after time.Duration
}

func runRuntimeFailover(t *testing.T, run runtimeFailoverRun) {
	sen := redistest.StartSentinel(t)
	sink, runs := newSink(t)
	cfg := runtimeConfig(sink, "s8")
	cfg.Redis.Mode = taskhost.ModeSentinel
	cfg.Redis.MasterName = sen.MasterName()
	cfg.Redis.SentinelAddrs = sen.SentinelAddrs()
	cfg.Worker.Concurrency = 8
	rt, logs := startRuntime(t, cfg)
	oldMaster := sen.Master().Addr()
	var readyMu sync.Mutex
	var lastReady time.Time // when the monitor last became ready
	t.Cleanup(rt.Subscribe(func(_, to taskhost.State) {
		if to == taskhost.StateReady {
			readyMu.Lock()
			lastReady = time.Now()
			readyMu.Unlock()
		}
	}))

	code, rep := healthReport(t, rt)
	require.Equal(t, 200, code, "status %s, reasons %v", rep.Status, rep.Reasons)
	require.Equal(t, taskhost.ModeSentinel, rep.Connection.Mode)
	require.Equal(t, oldMaster, rep.Connection.Master, "the report names the current master; connection: %+v", *rep.Connection)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st := &outboxStream{subs: map[string]submission{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := range run.producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.run(ctx, rt.Client(), fmt.Sprintf("s8-p%d-", p), "s8", run.interval, stop)
		}()
	}
	stopStream := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopStream)

	require.Eventually(t, func() bool { return runs.distinct() > 50 }, 10*time.Second, 10*time.Millisecond,
		"the stream is processed before the kill")
	time.Sleep(run.before)

	wakeupBefore := rt.WakeupSource()
	killedAt := time.Now()
	sen.KillMaster()
	newMaster, err := sen.WaitFailover(ctx)
	require.NoError(t, err)
	promotedAt := time.Now()
	require.NotEqual(t, oldMaster, newMaster)

	var resumedAt time.Time
	require.Eventually(t, func() bool {
		for id := range runs.snapshot() {
			if at, ok := runs.firstAt(id); ok && at.After(promotedAt) && (resumedAt.IsZero() || at.Before(resumedAt)) {
				resumedAt = at
			}
		}
		return !resumedAt.IsZero()
	}, 10*time.Second, 10*time.Millisecond, "processing resumed within 10 s of the promotion, without a restart")
	require.Eventually(t, func() bool { return rt.State().String() == "ready" }, 10*time.Second, 10*time.Millisecond)
	readyMu.Lock()
	readyAt := lastReady
	readyMu.Unlock()
	time.Sleep(run.after)
	stopStream()

	subs, errs := st.snapshot()
	require.Empty(t, errs, "Submit never fails across a failover: the outbox holds what Redis cannot take (%d errors, first: %v)",
		len(errs), errs[:min(len(errs), 3)])
	held := 0
	for _, s := range subs {
		if s.held {
			held++
		}
	}

	// Every held task, and every task acked once the new master serves, runs.
	mustRun := func(id string, s submission) bool { return s.held || s.at.After(promotedAt) }
	require.Eventually(t, func() bool {
		if n, _ := rt.OutboxDepth(); n > 0 {
			return false
		}
		for id, s := range subs {
			if mustRun(id, s) && runs.get(id) == 0 {
				return false
			}
		}
		return true
	}, 20*time.Second+time.Duration(held)*time.Second/time.Duration(cfg.Outbox.DrainRate), 20*time.Millisecond,
		"every task held by the outbox during the failover is delivered and processed")

	insp := asynq.NewInspectorFromRedisClient(rt.Redis())
	t.Cleanup(func() { _ = insp.Close() })
	require.Eventually(t, func() bool {
		qi, err := insp.GetQueueInfo("s8")
		return err == nil && qi.Pending == 0 && qi.Scheduled == 0 && qi.Retry == 0
	}, 10*time.Second, 20*time.Millisecond)
	// What is still active now is left over from the old master: a task it
	// handed out, or whose completion it lost. Let in-flight ones finish.
	var active map[string]bool
	require.Eventually(t, func() bool {
		tasks, err := insp.ListActiveTasks("s8", asynq.PageSize(10000))
		if err != nil {
			return false
		}
		prev := active
		active = map[string]bool{}
		for _, ti := range tasks {
			active[ti.ID] = true
		}
		return prev != nil && len(prev) == len(active)
	}, 5*time.Second, 300*time.Millisecond)

	var res sentinelRuntimeResult
	res.failover, res.resume, res.ready = promotedAt.Sub(killedAt), resumedAt.Sub(promotedAt), readyAt.Sub(promotedAt)
	processed := runs.snapshot()
	var lostAt []time.Time
	for id, s := range subs {
		n := processed[id]
		if s.held {
			res.held++
			require.Equal(t, 1, n, "held task %s runs exactly once", id)
		} else {
			res.direct++
		}
		if mustRun(id, s) {
			require.Equal(t, 1, n, "task %s, acked after the promotion, runs exactly once", id)
		}
		switch {
		case n > 1:
			res.duplicated++
		case n == 1 && active[id]:
			res.completionLost++
		case n == 0 && active[id]:
			res.stuckActive++
		case n == 0:
			res.lost = append(res.lost, id)
			lostAt = append(lostAt, s.at)
		}
	}
	sort.Slice(lostAt, func(i, j int) bool { return lostAt[i].Before(lostAt[j]) })
	for _, at := range lostAt {
		// Only a write the old master acknowledged, and had not yet sent to
		// the replica, can be lost: one acked just before the kill (or read
		// from the socket just after it).
		require.True(t, at.Before(promotedAt), "only writes acked by the old master can be lost")
		require.Less(t, killedAt.Sub(at), time.Second, "asynchronous replication loses only the last moment of writes")
	}
	// A completion that failed on the dying master: where is its task now?
	syncLines := logLines(logs, "Will retry syncing")
	res.syncRetried = len(syncLines)
	for _, l := range syncLines {
		m := syncTaskID.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		id, state := m[1], "gone"
		if ti, err := insp.GetTaskInfo("s8", id); err == nil {
			state = ti.State.String()
		}
		t.Logf("completion failed for %s: acked %v before the kill, ran %d time(s), on the new master: %s",
			id, killedAt.Sub(subs[id].at).Round(time.Millisecond), processed[id], state)
	}

	var hrep health.Report
	require.Eventually(t, func() bool {
		code, hrep = healthReport(t, rt)
		return code == 200 && hrep.Connection != nil && hrep.Connection.Master == newMaster
	}, 10*time.Second, 50*time.Millisecond, "/healthz names the new master")
	require.Equal(t, taskhost.ModeSentinel, hrep.Connection.Mode)
	require.Equal(t, "ready", hrep.Connection.State)
	require.Nil(t, hrep.Connection.CameBackEmptyAt, "a failover to a replica with the data is not an empty restart")
	require.Equal(t, health.StatusOK, hrep.Status, "reasons: %v", hrep.Reasons)

	if wakeupBefore != taskhost.WakeupPoll {
		// The wake-ups (blocking reads by default) come back on the new master.
		require.Eventually(t, func() bool { return rt.WakeupSource() == wakeupBefore }, 10*time.Second, 50*time.Millisecond)
	}
	res.wakeup = wakeupBefore + "->" + rt.WakeupSource()

	require.Less(t, res.resume, 10*time.Second)
	t.Logf("runtime sentinel failover: submitted=%d (direct=%d held-by-outbox=%d) %s", len(subs), res.direct, res.held, res)
}

// syncTaskID finds the task ID in asynq's "Could not remove task id=..."
// warning.
var syncTaskID = regexp.MustCompile(`task id=(\S+) type=`)

type sentinelRuntimeResult struct {
	direct, held               int
	duplicated, completionLost int
	stuckActive, syncRetried   int
	lost                       []string
	failover, resume, ready    time.Duration
	wakeup                     string // wake-up source before -> after
}

func (r sentinelRuntimeResult) String() string {
	return fmt.Sprintf("lost=%d duplicated-in-run=%d completion-lost(will-rerun)=%d stuck-active(will-run-after-lease)=%d completion-retries-logged=%d kill->promotion=%v promotion->first-task=%v promotion->monitor-ready=%v wake-ups=%s",
		len(r.lost), r.duplicated, r.completionLost, r.stuckActive, r.syncRetried,
		r.failover.Round(time.Millisecond), r.resume.Round(time.Millisecond), r.ready.Round(time.Millisecond), r.wakeup)
}
