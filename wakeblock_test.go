package taskhost_test

import (
	"context"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/redistest"
)

// noConfig starts Redis as managed services run it: CONFIG refused.
var noConfig = redistest.Options{Args: []string{"--rename-command", "CONFIG", ""}}

// slowLook is the fetchers' idle bound in the tests below: far longer than
// their bounds on a task's start, so that a task that starts in time was
// found by a wake-up, not by an idle fetcher's look.
const slowLook = time.Minute

// startSlowLook starts e's worker with the fetchers' idle bound at
// slowLook, logging to logs when given.
func (e *spdEnv) startSlowLook(t *testing.T, logs *spdLog) {
	t.Helper()
	var rt *taskhost.Runtime
	if logs != nil {
		rt = newRuntime(t, e.cfg, logs)
	} else {
		rt = newRuntime(t, e.cfg)
	}
	taskhost.SetFetcherIdle(rt, slowLook)
	require.NoError(t, rt.Start(context.Background()))
	e.rt = rt
	waitState(t, e.rt, 5*time.Second, "ready")
}

// latencies returns the recorded start latencies.
func (e *spdEnv) latencies() []time.Duration {
	e.rec.mu.Lock()
	defer e.rec.mu.Unlock()
	return append([]time.Duration(nil), e.rec.latency...)
}

// On a Redis that refuses CONFIG, as managed services do, the default
// wake-ups need nothing from the server's config: after an idle spell of 3 s,
// a task from a plain asynq client starts within milliseconds, where the
// idle fetchers would look only after a minute.
func TestWakeupWithoutConfig(t *testing.T) {
	t.Parallel()
	e := spdSetup(t, nil, noConfig)
	e.startSlowLook(t, nil)
	e.waitSource(t, taskhost.WakeupBlock)
	time.Sleep(3 * time.Second) // idle
	e.enqueue(t)
	e.waitCount(t, 1, 10*time.Second)
	for range 20 { // sparse tasks
		time.Sleep(20 * time.Millisecond)
		e.enqueue(t)
	}
	e.waitCount(t, 21, 10*time.Second)
	lat := e.latencies()
	t.Logf("start latency after 3 s idle: %s; then p50 %s, max %s", lat[0], percentile(lat[1:], 0.5), percentile(lat[1:], 1))
	require.Less(t, lat[0], 2*time.Second, "a wake-up, not a look (%s)", slowLook)
	require.Less(t, percentile(lat[1:], 1), 2*time.Second)
}

// By default the worker never sends CONFIG, so a shared server's config is
// left as its operator set it.
func TestWakeupDefaultNeverSendsConfig(t *testing.T) {
	t.Parallel()
	e := spdSetup(t, nil)
	e.start(t)
	e.waitSource(t, taskhost.WakeupBlock)
	e.enqueue(t)
	e.waitCount(t, 1, 5*time.Second)
	rdb := redis.NewClient(&redis.Options{Addr: e.redis.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	require.Zero(t, spdCalls(t, rdb, "config"), "CONFIG calls")
	flags, err := rdb.ConfigGet(context.Background(), "notify-keyspace-events").Result()
	require.NoError(t, err)
	require.Empty(t, flags["notify-keyspace-events"])
}

// worker.wakeup: notify is the opt-in that changes the server's config: it
// turns keyspace notifications on with CONFIG SET, and tasks start at once.
func TestWakeupNotifyOptIn(t *testing.T) {
	t.Parallel()
	e := spdSetup(t, func(c *taskhost.Config) { c.Worker.Wakeup = "notify" })
	e.startSlowLook(t, nil)
	e.waitSource(t, taskhost.WakeupNotify)
	rdb := redis.NewClient(&redis.Options{Addr: e.redis.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	flags, err := rdb.ConfigGet(context.Background(), "notify-keyspace-events").Result()
	require.NoError(t, err)
	require.Contains(t, flags["notify-keyspace-events"], "K")
	time.Sleep(800 * time.Millisecond) // idle, longer than the subscription's gate
	e.enqueue(t)
	e.waitCount(t, 1, 10*time.Second)
	require.Less(t, e.latencies()[0], 2*time.Second)
}

// Notifications preset by an operator work in notify mode even where CONFIG
// is refused: the probe list proves they arrive.
func TestWakeupNotifyUsesPresetNotificationsWithoutConfig(t *testing.T) {
	t.Parallel()
	e := spdSetup(t, func(c *taskhost.Config) { c.Worker.Wakeup = "notify" },
		redistest.Options{Args: []string{"--notify-keyspace-events", "Kl", "--rename-command", "CONFIG", ""}})
	e.startSlowLook(t, nil)
	e.waitSource(t, taskhost.WakeupNotify)
	time.Sleep(50 * time.Millisecond) // idle
	e.enqueue(t)
	e.waitCount(t, 1, 10*time.Second)
	require.Less(t, e.latencies()[0], 2*time.Second)
}

// In notify mode on a Redis that refuses CONFIG (and has no notifications
// preset), the worker says so once and uses blocking reads.
func TestWakeupNotifyFallsBackToBlockingWithoutConfig(t *testing.T) {
	t.Parallel()
	e := spdSetup(t, func(c *taskhost.Config) { c.Worker.Wakeup, c.Log.Level = "notify", "info" }, noConfig)
	var logs spdLog
	e.startSlowLook(t, &logs)
	e.waitSource(t, taskhost.WakeupBlock)
	require.Equal(t, 1, strings.Count(logs.String(), "keyspace notifications are unavailable"), "said once")
	time.Sleep(100 * time.Millisecond) // idle
	e.enqueue(t)
	e.waitCount(t, 1, 10*time.Second)
	require.Less(t, e.latencies()[0], 2*time.Second)
}

// worker.wakeup: poll needs nothing but the dequeue: the first task of an
// idle worker is found within the idle bound (1 s, as asynq's own poll),
// and while tasks flow the poll is fast.
func TestWakeupPollMode(t *testing.T) {
	t.Parallel()
	e := spdSetup(t, func(c *taskhost.Config) { c.Worker.Wakeup = "poll" })
	e.start(t)
	require.Equal(t, taskhost.WakeupPoll, e.rt.WakeupSource())
	e.enqueue(t)
	e.waitCount(t, 1, 3*time.Second)
	for range 50 {
		e.enqueue(t)
		time.Sleep(2 * time.Millisecond)
	}
	e.waitCount(t, 51, 5*time.Second)
	require.Less(t, percentile(e.latencies()[1:], 0.5), 50*time.Millisecond, "median start latency while tasks flow, polling")
}

// A Redis without BLMOVE (before 6.2; here renamed away) gets BRPOPLPUSH,
// which Redis has had since 2.2: tasks still start by wake-ups.
func TestWakeupWithoutBLMOVE(t *testing.T) {
	t.Parallel()
	e := spdSetup(t, func(c *taskhost.Config) { c.Log.Level = "info" },
		redistest.Options{Args: []string{"--rename-command", "BLMOVE", ""}})
	var logs spdLog
	e.startSlowLook(t, &logs)
	e.waitSource(t, taskhost.WakeupBlock)
	require.Contains(t, logs.String(), "blocking with BRPOPLPUSH")
	time.Sleep(100 * time.Millisecond)
	for range 5 {
		e.enqueue(t)
		time.Sleep(20 * time.Millisecond)
	}
	e.waitCount(t, 5, 10*time.Second)
	require.Less(t, percentile(e.latencies(), 1), 2*time.Second)
}

// Where an ACL refuses the blocking commands, the worker says so once and
// polls; tasks still start.
func TestWakeupBlockingRefusedPolls(t *testing.T) {
	t.Parallel()
	e := spdSetup(t, func(c *taskhost.Config) {
		c.Log.Level = "info"
		c.Redis.Username, c.Redis.Password = "worker", "worker-secret"
	}, redistest.Options{Password: "admin-secret", Args: []string{"--user", "worker", "on", ">worker-secret", "~*", "&*", "+@all", "-@blocking"}})
	require.NoError(t, e.client.Close())
	e.client = asynq.NewClient(asynq.RedisClientOpt{Addr: e.redis.Addr(), Password: "admin-secret"})
	var logs spdLog
	rt := newRuntime(t, e.cfg, &logs)
	require.NoError(t, rt.Start(context.Background()))
	e.rt = rt
	waitState(t, e.rt, 5*time.Second, "ready")
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "Redis refuses blocking reads") },
		5*time.Second, 10*time.Millisecond)
	require.Equal(t, taskhost.WakeupPoll, e.rt.WakeupSource())
	e.enqueue(t)
	e.waitCount(t, 1, 5*time.Second)
	require.Equal(t, 1, strings.Count(logs.String(), "Redis refuses blocking reads"), "said once")
	require.NotContains(t, logs.String(), "worker-secret")
}

// waitIdle waits until every fetcher of e's worker waits for a wake-up,
// the wake-ups are live and a blocking read is in flight on every queue: a
// task enqueued then starts only by a wake-up, or after the fetchers' idle
// bound, and a Redis that goes away now fails those reads.
func (e *spdEnv) waitIdle(t *testing.T, fetchers int) {
	t.Helper()
	queues := len(e.cfg.Worker.Queues)
	require.Eventually(t, func() bool {
		return taskhost.WaitingFetchers(e.rt) == fetchers && e.rt.WakeupSource() == taskhost.WakeupBlock &&
			taskhost.BlockingReads(e.rt) == queues
	}, 10*time.Second, 5*time.Millisecond, "waiting fetchers %d of %d, source %s, blocking reads %d of %d",
		taskhost.WaitingFetchers(e.rt), fetchers, e.rt.WakeupSource(), taskhost.BlockingReads(e.rt), queues)
}

// Wake-ups come back after each of 20 Redis restarts in a row, without a
// worker restart: after each, once the worker is idle again, a task from a
// plain client starts by a wake-up (the fetchers' own look is a minute
// away).
func TestWakeupSurvivesRedisRestarts(t *testing.T) {
	t.Parallel()
	e := spdSetup(t, func(c *taskhost.Config) {
		c.Redis.PingInterval, c.Redis.BackoffMin, c.Redis.BackoffMax = 100*time.Millisecond, 50*time.Millisecond, 200*time.Millisecond
	})
	e.startSlowLook(t, nil)
	fetchers := e.cfg.Worker.Fetchers
	t0 := time.Now()
	for i := range 20 {
		e.waitIdle(t, fetchers)
		lives := taskhost.WakeupLives(e.rt)
		e.redis.MustRestart(t)
		waitState(t, e.rt, 10*time.Second, "ready")
		// The blocking reads failed with the restart and are back.
		require.Eventually(t, func() bool { return taskhost.WakeupLives(e.rt) > lives }, 10*time.Second, 5*time.Millisecond)
		// The plain client's pool reconnects on its first failure.
		require.Eventually(t, func() bool { _, err := e.ins.Queues(); return err == nil }, 5*time.Second, 10*time.Millisecond)
		e.waitIdle(t, fetchers)
		e.enqueue(t)
		e.waitCount(t, i+1, 10*time.Second)
	}
	lat := e.latencies()
	t.Logf("20 restarts in %s; start latency after each: p50 %s, max %s", time.Since(t0).Round(time.Millisecond),
		percentile(lat, 0.5), percentile(lat, 1))
}

// newRuntime builds a runtime for cfg, not started, and stops it in
// t.Cleanup.
func newRuntime(t testing.TB, cfg taskhost.Config, logOut ...io.Writer) *taskhost.Runtime {
	t.Helper()
	var w io.Writer = io.Discard
	if len(logOut) > 0 {
		w = logOut[0]
	}
	rt, err := taskhost.New(cfg, taskhost.Options{Logger: taskhost.NewLogger(cfg.Log, w), Version: "test"})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, rt.Stop(ctx))
	})
	return rt
}

// stampNow is a probe payload: the current time.
func stampNow() []byte { return binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano())) }

// Wake-ups follow a Sentinel failover: the blocking reads fail with the old
// master and go to the promoted replica, where a task from a plain client
// then starts by a wake-up.
func TestWakeupSurvivesSentinelFailover(t *testing.T) {
	t.Parallel()
	sen := redistest.StartSentinel(t)
	e := &spdEnv{rec: &spdRecorder{starts: map[string]int{}}}
	spdSinks.Store(t.Name(), asynq.HandlerFunc(e.rec.handle))
	t.Cleanup(func() { spdSinks.Delete(t.Name()) })
	e.cfg = testConfig(t, sen.Master().Addr())
	e.cfg.Redis.Mode, e.cfg.Redis.MasterName, e.cfg.Redis.SentinelAddrs = taskhost.ModeSentinel, sen.MasterName(), sen.SentinelAddrs()
	e.cfg.Redis.PingInterval, e.cfg.Redis.BackoffMin, e.cfg.Redis.BackoffMax = 100*time.Millisecond, 50*time.Millisecond, 200*time.Millisecond
	e.cfg.Plugins = map[string]map[string]any{"spd-probe": {"sink": t.Name()}}
	e.startSlowLook(t, nil)
	fetchers := e.cfg.Worker.Fetchers
	e.waitIdle(t, fetchers)

	opt := asynq.RedisFailoverClientOpt{MasterName: sen.MasterName(), SentinelAddrs: sen.SentinelAddrs()}
	e.client = asynq.NewClient(opt)
	t.Cleanup(func() { _ = e.client.Close() })
	e.enqueue(t)
	e.waitCount(t, 1, 10*time.Second)

	e.waitIdle(t, fetchers)
	lives := taskhost.WakeupLives(e.rt)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sen.KillMaster()
	_, err := sen.WaitFailover(ctx)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return taskhost.WakeupLives(e.rt) > lives }, 20*time.Second, 10*time.Millisecond,
		"the blocking reads are back on the new master")
	waitState(t, e.rt, 10*time.Second, "ready")
	e.waitIdle(t, fetchers)
	require.Eventually(t, func() bool {
		_, err := e.client.Enqueue(asynq.NewTask(spdType, stampNow()))
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)
	e.waitCount(t, 2, 10*time.Second)
	t.Logf("start latency before the failover %s, after %s", e.latencies()[0], e.latencies()[1])
}

// In Redis Cluster, each queue's blocking read goes to the node of its
// slot: a task from a plain cluster client starts by a wake-up on every
// queue, wherever its slot lives.
func TestWakeupOnCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	e := &spdEnv{rec: &spdRecorder{starts: map[string]int{}}}
	spdSinks.Store(t.Name(), asynq.HandlerFunc(e.rec.handle))
	t.Cleanup(func() { spdSinks.Delete(t.Name()) })
	e.cfg = testConfig(t, cl.Addrs()[0])
	e.cfg.Redis.Mode, e.cfg.Redis.Addrs, e.cfg.Redis.Host = taskhost.ModeCluster, cl.Addrs(), ""
	// Queue names whose slots (hashed on "{name}") fall on different masters.
	queues := map[string]int{}
	for _, q := range []string{"a", "b", "c", "d", "e", "f"} {
		queues[q] = 1
	}
	e.cfg.Worker.Queues = queues
	e.cfg.Plugins = map[string]map[string]any{"spd-probe": {"sink": t.Name()}}
	e.startSlowLook(t, nil)
	e.waitIdle(t, e.cfg.Worker.Fetchers)
	e.client = asynq.NewClient(asynq.RedisClusterClientOpt{Addrs: cl.Addrs()})
	t.Cleanup(func() { _ = e.client.Close() })
	n := 0
	for q := range queues {
		e.waitIdle(t, e.cfg.Worker.Fetchers)
		e.enqueue(t, asynq.Queue(q))
		n++
		e.waitCount(t, n, 10*time.Second)
	}
	lat := e.latencies()
	t.Logf("start latency over %d queues: p50 %s, max %s", n, percentile(lat, 0.5), percentile(lat, 1))
}

// With the blocking reads, an unpause is noticed without the fetchers' own
// look (a minute away here): the tasks of a paused queue wake a fetcher each
// time the queue's mute ends.
func TestWakeupUnpauseNoticedByWakeups(t *testing.T) {
	t.Parallel()
	e := spdSetup(t, func(c *taskhost.Config) { c.Worker.Fetchers = 2 })
	e.startSlowLook(t, nil)
	e.waitIdle(t, 2)
	require.NoError(t, e.ins.PauseQueue("default"))
	for range 5 {
		e.enqueue(t)
	}
	time.Sleep(1500 * time.Millisecond) // the queue is muted at least once
	require.Zero(t, e.rec.count(), "a task of a paused queue started")
	t0 := time.Now()
	require.NoError(t, e.ins.UnpauseQueue("default"))
	e.waitCount(t, 5, 10*time.Second)
	t.Logf("unpause noticed after %s", time.Since(t0).Round(time.Millisecond))
}
