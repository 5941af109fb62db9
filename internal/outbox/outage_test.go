package outbox_test

import (
	"context"
	"fmt"
	"math"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/outbox"
	"github.com/taskhost/taskhost/internal/redistest"
)

// outageTask is task i of the long-outage test. It spreads the options
// across tasks: a queue given to NewTask, an absolute ProcessAt, Unique,
// ProcessIn with retry, timeout and retention, and the caller's own IDs.
func outageTask(i int, at time.Time) (*asynq.Task, []asynq.Option) {
	switch i % 4 {
	case 0:
		return asynq.NewTask("outage:a", payload(i), asynq.Queue("critical")), nil
	case 1:
		return asynq.NewTask("outage:b", payload(i)), []asynq.Option{asynq.ProcessAt(at.Add(time.Duration(i) * time.Second))}
	case 2:
		return asynq.NewTask("outage:c", payload(i)), []asynq.Option{asynq.Queue("uniq"), asynq.Unique(time.Hour)}
	default:
		opts := []asynq.Option{asynq.ProcessIn(2 * time.Hour), asynq.MaxRetry(3),
			asynq.Timeout(time.Minute), asynq.Retention(time.Hour)}
		if i%8 == 3 {
			opts = append(opts, asynq.TaskID(fmt.Sprintf("own-%d", i)))
		}
		return asynq.NewTask("outage:d", payload(i)), opts
	}
}

// Not parallel: it times each call, so it runs before the parallel tests
// (crash children, Redis restarts) load the machine.
func TestLongOutageHoldsAndDeliversExactlyOnce(t *testing.T) {
	const n = 5000
	port, addr := closedPort(t)
	f := setup(t, addr, outbox.Options{DrainRate: math.Inf(1)})
	hook := &countHook{}
	f.rdb.AddHook(hook)
	at := time.Now().Add(time.Hour).Truncate(time.Second)

	ids := make([]string, n)
	took := make([]time.Duration, n)
	for i := range n {
		task, opts := outageTask(i, at)
		start := time.Now()
		r, err := f.c.Submit(context.Background(), task, opts...)
		took[i] = time.Since(start)
		require.NoError(t, err)
		require.True(t, r.Held)
		require.NotEmpty(t, r.Info.ID)
		ids[i] = r.Info.ID
	}
	slices.Sort(took)
	p99, worst := took[n*99/100], took[n-1]
	t.Logf("enqueue while Redis is down: p50=%v p99=%v max=%v", took[n/2], p99, worst)
	// The bound is 5 ms a call. It holds at the 99th percentile; the
	// worst call gets a margin for -race on a shared 2-core box, where the
	// scheduler alone was seen to stall a call for 150 ms at a load of 11.
	// That no call waited on Redis is shown by the count of dials and
	// commands, which does not depend on the machine's load.
	require.Less(t, p99, 5*time.Millisecond)
	require.Less(t, worst, 250*time.Millisecond, "an enqueue waited while Redis was down")
	require.Zero(t, hook.dials.Load(), "no enqueue dialled Redis while it was not ready")
	require.Zero(t, hook.cmds.Load(), "no enqueue sent a command while Redis was not ready")

	tasks, bytes := f.c.Depth()
	require.Equal(t, n, tasks)
	require.Positive(t, bytes)
	require.False(t, f.c.Oldest().IsZero())
	require.True(t, f.c.Held(ids[0]))
	require.True(t, f.c.Held("own-3"))

	startOn(t, port, redistest.Options{})
	f.up()

	got := inRedis(t, f.rdb, "default", "critical", "uniq")
	requireExactlyOnce(t, got, n)
	require.False(t, f.c.Held(ids[0]))
	require.True(t, f.c.Oldest().IsZero())

	// A sample, checked through asynq's inspector: queue, times, options.
	insp := asynq.NewInspectorFromRedisClient(f.rdb)
	bare := asynq.NewClientFromRedisClient(f.rdb)
	for i := 0; i < n; i += 97 {
		task, _ := outageTask(i, at)
		in := got[string(payload(i))][0]
		require.Equal(t, ids[i], in.ID, "task %d keeps the ID it was given when held", i)
		info, err := insp.GetTaskInfo(in.Queue, in.ID)
		require.NoError(t, err)
		switch i % 4 {
		case 0:
			require.Equal(t, "critical", info.Queue)
			require.Equal(t, asynq.TaskStatePending, info.State)
		case 1:
			require.Equal(t, "default", info.Queue)
			require.Equal(t, asynq.TaskStateScheduled, info.State)
			require.True(t, at.Add(time.Duration(i)*time.Second).Equal(info.NextProcessAt), "ProcessAt kept: %v", info.NextProcessAt)
		case 2:
			require.Equal(t, "uniq", info.Queue)
			_, err := bare.Enqueue(task, asynq.Queue("uniq"), asynq.Unique(time.Hour))
			require.ErrorIs(t, err, asynq.ErrDuplicateTask, "task %d keeps its uniqueness lock", i)
		case 3:
			require.Equal(t, asynq.TaskStateScheduled, info.State)
			require.WithinDuration(t, time.Now().Add(2*time.Hour), info.NextProcessAt, 5*time.Minute,
				"ProcessIn counts from the enqueue, not the delivery")
			require.Equal(t, 3, info.MaxRetry)
			require.Equal(t, time.Minute, info.Timeout)
			require.Equal(t, time.Hour, info.Retention)
			if i%8 == 3 {
				require.Equal(t, fmt.Sprintf("own-%d", i), info.ID)
			}
		}
	}

	// A few lines for the whole outage, not one per task.
	require.Len(t, f.logs.lines("holding enqueues"), 1)
	require.Len(t, f.logs.lines("drain started"), 1)
	require.Len(t, f.logs.lines("drain finished"), 1)
	require.Contains(t, f.logs.lines("drain finished")[0], fmt.Sprintf("delivered=%d", n))
	require.LessOrEqual(t, len(f.logs.lines("component=outbox")), 4, "log:\n%s", f.logs)
}

// countHook counts the dials and commands a client makes.
type countHook struct{ dials, cmds atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		h.dials.Add(1)
		return next(ctx, network, addr)
	}
}

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.cmds.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}
