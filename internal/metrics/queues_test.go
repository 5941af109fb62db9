package metrics_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/metrics"
	"github.com/taskhost/taskhost/internal/redistest"
)

// stubInspector answers with one fixed queue, without Redis.
type stubInspector struct{ err error }

func (s stubInspector) Queues() ([]string, error) { return []string{"default"}, s.err }
func (s stubInspector) GetQueueInfo(q string) (*asynq.QueueInfo, error) {
	return &asynq.QueueInfo{Queue: q, Size: 5, Pending: 4, Active: 1, Latency: 1500 * time.Millisecond,
		MemoryUsage: 2048, ProcessedTotal: 9, FailedTotal: 2, Paused: true}, nil
}

func TestQueueCollectorExportsInspectorStats(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	require.NoError(t, m.RegisterQueues(stubInspector{}, 0))
	_, fams := scrape(t, m.Gatherer())
	q := map[string]string{"queue": "default"}
	require.Equal(t, 1.0, value(t, fams, "taskhost_queue_stats_up", nil))
	require.Equal(t, 5.0, value(t, fams, "taskhost_queue_size", q))
	require.Equal(t, 4.0, value(t, fams, "taskhost_queue_tasks", map[string]string{"queue": "default", "state": "pending"}))
	require.Equal(t, 1.0, value(t, fams, "taskhost_queue_tasks", map[string]string{"queue": "default", "state": "active"}))
	require.Equal(t, 1.5, value(t, fams, "taskhost_queue_latency_seconds", q))
	require.Equal(t, 2048.0, value(t, fams, "taskhost_queue_memory_bytes", q))
	require.Equal(t, 9.0, value(t, fams, "taskhost_queue_processed_total", q))
	require.Equal(t, 2.0, value(t, fams, "taskhost_queue_failed_total", q))
	require.Equal(t, 1.0, value(t, fams, "taskhost_queue_paused", q))

	m = metrics.New()
	require.NoError(t, m.RegisterQueues(stubInspector{err: errors.New("refused")}, 0))
	_, fams = scrape(t, m.Gatherer())
	require.Equal(t, 0.0, value(t, fams, "taskhost_queue_stats_up", nil))
	require.NotContains(t, fams, "taskhost_queue_size", "no queue series when the read failed")
}

// queueSetup starts a redis-server holding asynq tasks: 3 in default, 1 in critical.
func queueSetup(t *testing.T) (*redistest.Server, *asynq.Inspector) {
	t.Helper()
	s := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), DialTimeout: 500 * time.Millisecond,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	ac := asynq.NewClientFromRedisClient(c)
	for i, q := range []string{"default", "default", "default", "critical"} {
		_, err := ac.Enqueue(asynq.NewTask("email:send", []byte{byte(i)}), asynq.Queue(q))
		require.NoError(t, err)
	}
	return s, asynq.NewInspectorFromRedisClient(c)
}

func TestQueueCollectorAgainstRealRedis(t *testing.T) {
	t.Parallel()
	_, in := queueSetup(t)
	m := metrics.New()
	require.NoError(t, m.RegisterQueues(in, time.Second))
	_, fams := scrape(t, m.Gatherer())
	require.Equal(t, 1.0, value(t, fams, "taskhost_queue_stats_up", nil))
	require.Equal(t, 3.0, value(t, fams, "taskhost_queue_size", map[string]string{"queue": "default"}))
	require.Equal(t, 3.0, value(t, fams, "taskhost_queue_tasks", map[string]string{"queue": "default", "state": "pending"}))
	require.Equal(t, 1.0, value(t, fams, "taskhost_queue_size", map[string]string{"queue": "critical"}))
	require.Greater(t, value(t, fams, "taskhost_queue_memory_bytes", map[string]string{"queue": "default"}), 0.0)
	require.GreaterOrEqual(t, value(t, fams, "taskhost_queue_latency_seconds", map[string]string{"queue": "default"}), 0.0)
}

func TestQueueCollectorDoesNotHangOnFrozenRedis(t *testing.T) {
	t.Parallel()
	s, in := queueSetup(t)
	m := metrics.New()
	const timeout = 300 * time.Millisecond
	require.NoError(t, m.RegisterQueues(in, timeout))
	_, fams := scrape(t, m.Gatherer())
	require.Equal(t, 1.0, value(t, fams, "taskhost_queue_stats_up", nil))

	s.Pause()
	defer s.Resume()
	for range 3 { // later scrapes join the read that is still hung
		begin := time.Now()
		_, fams = scrape(t, m.Gatherer())
		require.Less(t, time.Since(begin), timeout+2*time.Second, "a scrape waits about the timeout, not for Redis (generous for a loaded machine)")
		require.Equal(t, 0.0, value(t, fams, "taskhost_queue_stats_up", nil))
		require.NotContains(t, fams, "taskhost_queue_size", "no stale queue series")
		require.Contains(t, fams, "taskhost_tasks_in_flight", "the other metrics are still served")
	}

	s.Resume()
	require.Eventually(t, func() bool {
		_, fams := scrape(t, m.Gatherer())
		return value(t, fams, "taskhost_queue_stats_up", nil) == 1
	}, 5*time.Second, 20*time.Millisecond, "the gauges come back with Redis")
}
