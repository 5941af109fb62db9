package schedule_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/internal/schedule"
	"github.com/taskhost/taskhost/internal/testlog"
)

// TestFleetEnqueuesEachTickOnce runs three schedulers, started at different
// times within a second as workers would be, on one Redis with "@every 1s":
// every tick is enqueued once; the other two get ErrTaskIDConflict.
func TestFleetEnqueuesEachTickOnce(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	rdb := redistest.Client(t, s.Addr())
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { _ = client.Close() })
	insp := asynq.NewInspectorFromRedisClient(rdb)
	t.Cleanup(func() { _ = insp.Close() })

	var scheds []*schedule.Scheduler
	for i := range 3 {
		sch := schedule.New(schedule.Options{Enqueue: client.EnqueueContext})
		require.NoError(t, sch.Add(schedule.Entry{Name: "schedules.tick", Spec: "@every 1s",
			Task: asynq.NewTask("t:tick", nil), Opts: []asynq.Option{asynq.Queue("ticks"), asynq.MaxRetry(0)}}))
		sch.Start()
		t.Cleanup(sch.Stop)
		scheds = append(scheds, sch)
		time.Sleep(time.Duration(300+100*i) * time.Millisecond)
	}
	// Four ticks after the last start, then stop all.
	require.Eventually(t, func() bool {
		st := scheds[2].Status()[0]
		return st.Counts[schedule.ResultEnqueued]+st.Counts[schedule.ResultDuplicate] >= 4
	}, 10*time.Second, 20*time.Millisecond)
	for _, sch := range scheds {
		sch.Stop()
	}

	var enqueued uint64
	for _, sch := range scheds {
		st := sch.Status()[0]
		require.Zero(t, st.Counts[schedule.ResultMissed])
		enqueued += st.Counts[schedule.ResultEnqueued]
		require.Equal(t, "t:tick", st.Type)
		require.Equal(t, "ticks", st.Queue)
	}
	tasks, err := insp.ListPendingTasks("ticks", asynq.PageSize(1000))
	require.NoError(t, err)
	require.Len(t, tasks, int(enqueued), "every enqueue that succeeded is one task")
	seen := map[string]bool{}
	for _, ti := range tasks {
		require.False(t, seen[ti.ID], "tick %s enqueued twice", ti.ID)
		seen[ti.ID] = true
		require.Regexp(t, `^schedules\.tick@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`, ti.ID)
		require.GreaterOrEqual(t, ti.Retention, schedule.MinWindow+schedule.SkewMargin)
	}
	// The last scheduler saw at least 4 ticks, all of which are in Redis.
	require.GreaterOrEqual(t, len(seen), 4)
}

// fakeEnqueue fails while failing is set, and records the IDs it accepted.
type fakeEnqueue struct {
	failing atomic.Bool
	calls   atomic.Int64
	mu      sync.Mutex
	ids     []string
}

func (f *fakeEnqueue) enqueue(_ context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	f.calls.Add(1)
	if f.failing.Load() {
		return nil, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	}
	id := ""
	for _, o := range opts {
		if o.Type() == asynq.TaskIDOpt {
			id = o.Value().(string)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, seen := range f.ids {
		if seen == id {
			return nil, asynq.ErrTaskIDConflict
		}
	}
	f.ids = append(f.ids, id)
	return &asynq.TaskInfo{ID: id}, nil
}

// A tick whose enqueue fails is retried within its window, then counted as
// missed; one warning for a run of misses, one line when enqueues resume.
func TestFailedTickIsRetriedThenMissed(t *testing.T) {
	t.Parallel()
	f := &fakeEnqueue{}
	f.failing.Store(true)
	var logs syncBuffer
	sch := schedule.New(schedule.Options{Enqueue: f.enqueue, RetryMin: 50 * time.Millisecond, MinWindow: time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, sch.Add(schedule.Entry{Name: "e", Spec: "@every 1s", Task: asynq.NewTask("t", nil)}))
	sch.Start()
	t.Cleanup(sch.Stop)
	require.Eventually(t, func() bool { return sch.Status()[0].Counts[schedule.ResultMissed] >= 2 }, 10*time.Second, 10*time.Millisecond)
	st := sch.Status()[0]
	require.Equal(t, schedule.ResultMissed, st.LastResult)
	require.Contains(t, st.LastError, "connection refused")
	require.True(t, st.LastRun.IsZero())
	require.Greater(t, f.calls.Load(), int64(4), "retried within the window")
	f.failing.Store(false)
	require.Eventually(t, func() bool { return sch.Status()[0].LastResult == schedule.ResultEnqueued }, 5*time.Second, 10*time.Millisecond)
	sch.Stop()
	sch.Stop()
	out := logs.String()
	require.Equal(t, 1, bytes.Count([]byte(out), []byte("scheduled tick missed")), out)
	require.Contains(t, out, "schedule enqueues again")
	st = sch.Status()[0]
	require.Equal(t, st.LastTick, st.LastRun)
	require.False(t, st.Next.IsZero())
}

// A tick that fails at first is enqueued once Redis is back within its window.
func TestTickRetriedUntilRedisIsBack(t *testing.T) {
	t.Parallel()
	f := &fakeEnqueue{}
	f.failing.Store(true)
	ready := make(chan struct{})
	sch := schedule.New(schedule.Options{Enqueue: f.enqueue, Wait: func(ctx context.Context) bool {
		select {
		case <-ready:
			return true
		case <-ctx.Done():
			return false
		}
	}})
	require.NoError(t, sch.Add(schedule.Entry{Name: "e", Spec: "@every 3s", Task: asynq.NewTask("t", nil)}))
	sch.Start()
	t.Cleanup(sch.Stop)
	require.Eventually(t, func() bool { return f.calls.Load() >= 1 }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	require.Equal(t, int64(1), f.calls.Load(), "waits for Redis instead of hammering it")
	f.failing.Store(false)
	close(ready)
	require.Eventually(t, func() bool { return sch.Status()[0].LastResult == schedule.ResultEnqueued }, 5*time.Second, 5*time.Millisecond)
	require.Zero(t, sch.Status()[0].Counts[schedule.ResultMissed])
}

// The ticks of an outage shorter than the window are all enqueued once it
// ends, each under its own ID: an outage or a failover of a few seconds
// costs no tick of an "@every 1s" schedule.
func TestTicksOfAnOutageAreCaughtUp(t *testing.T) {
	t.Parallel()
	f := &fakeEnqueue{}
	f.failing.Store(true)
	sch := schedule.New(schedule.Options{Enqueue: f.enqueue, RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	require.NoError(t, sch.Add(schedule.Entry{Name: "e", Spec: "@every 1s", Task: asynq.NewTask("t", nil)}))
	sch.Start()
	t.Cleanup(sch.Stop)
	first := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(first.Add(2500 * time.Millisecond)))
	f.failing.Store(false)
	require.Eventually(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.ids) >= 3
	}, 5*time.Second, 10*time.Millisecond)
	sch.Stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range 3 {
		require.Contains(t, f.ids, schedule.TickID("e", first.Add(time.Duration(i)*time.Second)))
	}
	st := sch.Status()[0]
	require.Zero(t, st.Counts[schedule.ResultMissed])
	require.Equal(t, uint64(len(f.ids)), st.Counts[schedule.ResultEnqueued])
	require.False(t, st.LastRun.Before(first.Add(2*time.Second)), "the latest tick, whatever order they ended in")
}

func TestAddRefuses(t *testing.T) {
	t.Parallel()
	sch := schedule.New(schedule.Options{Enqueue: (&fakeEnqueue{}).enqueue})
	task := asynq.NewTask("t", nil)
	require.ErrorContains(t, sch.Add(schedule.Entry{Name: "a", Spec: "nope", Task: task}), `spec "nope"`)
	require.Error(t, sch.Add(schedule.Entry{Name: "a", Spec: "@hourly"}))
	require.ErrorIs(t, sch.Add(schedule.Entry{Name: "a", Spec: "@hourly", Task: task, Opts: []asynq.Option{asynq.TaskID("x")}}), schedule.ErrTaskID)
	require.ErrorContains(t, sch.Add(schedule.Entry{Name: "a", Spec: "@every 10s", Task: task, Opts: []asynq.Option{asynq.Unique(10 * time.Second)}}), "shortest gap")
	require.NoError(t, sch.Add(schedule.Entry{Name: "a", Spec: "@hourly", Task: task}))
	require.ErrorContains(t, sch.Add(schedule.Entry{Name: "a", Spec: "@daily", Task: task}), "twice")
	require.Equal(t, 1, sch.Len())
	sch.Stop() // before Start
	sch.Start()
	sch.Stop()
}

// syncBuffer is the one goroutine-safe log buffer of the tests.
type syncBuffer = testlog.Buffer

// Remove ends an entry's ticks at once, while the others keep ticking; the
// name can be added again.
func TestRemoveStopsAnEntry(t *testing.T) {
	t.Parallel()
	f := &fakeEnqueue{}
	sch := schedule.New(schedule.Options{Enqueue: f.enqueue})
	t.Cleanup(sch.Stop)
	task := asynq.NewTask("t", nil)
	require.NoError(t, sch.Add(schedule.Entry{Name: "gone", Spec: "@every 1s", Task: task}))
	require.NoError(t, sch.Add(schedule.Entry{Name: "kept", Spec: "@every 1s", Task: task}))
	require.False(t, sch.Remove("nothing"))
	sch.Start()
	count := func(name string) uint64 {
		for _, st := range sch.Status() {
			if st.Name == name {
				return st.Counts[schedule.ResultEnqueued]
			}
		}
		return 0
	}
	require.Eventually(t, func() bool { return count("gone") >= 1 }, 10*time.Second, 20*time.Millisecond)
	require.True(t, sch.Remove("gone"))
	require.False(t, sch.Remove("gone"))
	require.Len(t, sch.Status(), 1)
	prefix := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		n := 0
		for _, id := range f.ids {
			if len(id) > 5 && id[:5] == "gone@" {
				n++
			}
		}
		return n
	}
	removed := prefix()
	base := count("kept")
	require.Eventually(t, func() bool { return count("kept") >= base+2 }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, removed, prefix(), "a removed entry enqueues no more ticks")

	require.NoError(t, sch.Add(schedule.Entry{Name: "gone", Spec: "@every 1s", Task: task}))
	require.Eventually(t, func() bool { return count("gone") >= 1 }, 10*time.Second, 20*time.Millisecond)
}
