package chaostest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
)

// The fleet tests run real worker processes, as TestChaos does, against the
// three things a fleet of workers must get right: one run per tick of a
// periodic task, one recoverer per process, and acknowledgements that
// survive a Redis outage.

// fleetOpts shapes a fleet test's worker config.
type fleetOpts struct {
	redis       string // the redis section's body; url of the harness' queue Redis when empty
	concurrency int
	fetchers    int
	work        time.Duration
	every       string // plugins.chaos.every
	extra       string // top-level YAML appended, e.g. a schedules section
}

// fleetConfig writes a worker config file for o and returns its path.
func (h *harness) fleetConfig(o fleetOpts) string {
	h.t.Helper()
	if o.redis == "" {
		o.redis = "  url: " + h.queue.URL() + "\n"
	}
	if o.concurrency == 0 {
		o.concurrency = 10
	}
	if o.fetchers == 0 {
		o.fetchers = 4
	}
	level := os.Getenv("CHAOS_WORKER_LOG_LEVEL")
	if level == "" {
		level = "warn"
	}
	every := ""
	if o.every != "" {
		every = fmt.Sprintf("    every: %q\n", o.every)
	}
	body := fmt.Sprintf("log:\n  level: %s\nredis:\n%sworker:\n  concurrency: %d\n  fetchers: %d\n  shutdown_timeout: %s\n"+
		"plugins:\n  chaos:\n    record_addr: %s\n    work: %s\n%s%s",
		level, o.redis, o.concurrency, o.fetchers, workerShutdown, h.rec.Addr(), o.work, every, o.extra)
	path := filepath.Join(h.t.TempDir(), "worker.yaml")
	require.NoError(h.t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

// tickSchedules is a schedules section: chaos:record every second.
const tickSchedules = `schedules:
  tick:
    cron: "@every 1s"
    type: chaos:record
    payload: '{"seq": 1}'
    options: {max_retry: 0}
`

// Entry names of the two periodic tasks of the fleet tests.
const (
	configEntry = "schedules.tick"
	pluginEntry = "plugins.chaos.chaos:record"
)

// tickCount is how the runs of one periodic task fell on its ticks.
type tickCount struct {
	ticks, once, twice, missed int
	runs                       int
	interrupted                int // a second start after a first cut short by a SIGKILL: a rerun, not a second enqueue
	twiceAt, missedAt          []string
}

func (c tickCount) String() string {
	return fmt.Sprintf("%d ticks: %d ran once, %d twice, %d missed; %d runs (%.2f per tick); %d reruns of a run cut short by SIGKILL",
		c.ticks, c.once, c.twice, c.missed, c.runs, float64(c.runs)/float64(max(c.ticks, 1)), c.interrupted)
}

// countTicks counts the runs of entry's ticks in [from, to], from the
// recorder. A run's tick is in its task ID (<entry>@<RFC 3339>); a task
// without one (asynq's own scheduler, before taskhost had its own) counts at
// the second it started.
func countTicks(r *recorder, entry string, from, to time.Time) tickCount {
	byTick := map[int64][]*attempt{}
	for id, as := range r.byID {
		if !strings.HasPrefix(id, entry+"@") && (entry != pluginEntry || strings.Contains(id, "@")) {
			continue
		}
		for _, a := range as {
			tick := a.start.Truncate(time.Second)
			if _, at, ok := strings.Cut(id, "@"); ok {
				if t, err := time.Parse(time.RFC3339, at); err == nil {
					tick = t
				}
			}
			byTick[tick.Unix()] = append(byTick[tick.Unix()], a)
		}
	}
	var c tickCount
	for t := from.Truncate(time.Second); !t.After(to); t = t.Add(time.Second) {
		c.ticks++
		as := byTick[t.Unix()]
		c.runs += len(as)
		sort.Slice(as, func(i, j int) bool { return as[i].start.Before(as[j].start) })
		switch n := len(as); {
		case n == 0:
			c.missed++
			c.missedAt = append(c.missedAt, t.UTC().Format(time.TimeOnly))
		case n == 1:
			c.once++
		case n == 2 && !as[0].finished() && as[1].retry > as[0].retry:
			c.once++
			c.interrupted++
		default:
			c.twice++
			c.twiceAt = append(c.twiceAt, t.UTC().Format(time.TimeOnly))
		}
	}
	return c
}

// TestFleetScheduleOncePerTick runs three workers with two periodic tasks
// every second, one from the schedules config and one from a plugin's
// Host.Schedule, while one worker is SIGKILLed (and restarted a second
// later) and another is stopped by SIGTERM and restarted. Each tick must
// run exactly once. It prints the runs per tick.
func TestFleetScheduleOncePerTick(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos suite: skipped with -short")
	}
	t.Parallel()
	h := setup(t)
	h.startWorkers(3, h.fleetConfig(fleetOpts{every: "@every 1s", extra: tickSchedules}))
	begin := time.Now()
	run := prof.fleetRun
	at := func(d time.Duration) { time.Sleep(time.Until(begin.Add(d))) }
	at(run / 3)
	h.killWorker(0, time.Second)
	at(2 * run / 3)
	h.termWorker(1)
	at(run)
	from, to := begin.Add(2*time.Second), begin.Add(run-2*time.Second)
	h.requireOncePerTick(from, to, configEntry, pluginEntry)
}

// requireOncePerTick waits for the runs of the ticks in [from, to] of each
// entry, prints how they fell, and requires that none ran twice and at most
// one was missed.
func (h *harness) requireOncePerTick(from, to time.Time, entries ...string) {
	t := h.t
	t.Helper()
	counts := map[string]tickCount{}
	deadline := time.Now().Add(15 * time.Second)
	for {
		require.NoError(t, h.recorder.poll(context.Background()))
		done := true
		for _, e := range entries {
			counts[e] = countTicks(h.recorder, e, from, to)
			done = done && counts[e].missed == 0
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, e := range entries {
		c := counts[e]
		fmt.Printf("fleet: %s with 3 workers: %s\n", e, c)
		require.Zero(t, c.twice, "%s: ticks run twice at %v", e, c.twiceAt)
		require.LessOrEqual(t, c.missed, 1, "%s: ticks missed at %v", e, c.missedAt)
		require.Positive(t, c.once)
	}
}

// TestFleetScheduleAcrossSentinelFailover runs the same three workers on a
// Sentinel fixture and kills the master: every tick still runs once, the
// ticks of the failover late (their enqueues are retried for a minute).
func TestFleetScheduleAcrossSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos suite: skipped with -short")
	}
	t.Parallel()
	h := setup(t)
	sen := redistest.StartSentinel(t)
	addrs := `["` + strings.Join(sen.SentinelAddrs(), `", "`) + `"]`
	redisSection := fmt.Sprintf("  mode: sentinel\n  master_name: %s\n  sentinel_addrs: %s\n", sen.MasterName(), addrs)
	h.startWorkers(3, h.fleetConfig(fleetOpts{redis: redisSection, extra: tickSchedules}))
	begin := time.Now()
	time.Sleep(4 * time.Second)
	killed := time.Now()
	sen.KillMaster()
	newMaster, err := sen.WaitFailover(context.Background())
	require.NoError(t, err)
	t.Logf("master killed at %s; %s promoted after %s", killed.Format("15:04:05.000"), newMaster, time.Since(killed).Round(time.Millisecond))
	time.Sleep(6 * time.Second)
	h.requireOncePerTick(begin.Add(2*time.Second), time.Now().Add(-2*time.Second), configEntry)
}

// TestRestartAfterKillRecoversWithoutRace SIGKILLs a worker (4 fetchers)
// with 8 tasks in flight and starts it again once their leases have
// expired: one recoverer per process retries each orphan once, with none
// of asynq's "could not retry lease expired task: NOT FOUND" warnings of
// fetchers racing each other, and every orphan runs again.
func TestRestartAfterKillRecoversWithoutRace(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos suite: skipped with -short")
	}
	t.Parallel()
	h := setup(t)
	h.startWorkers(1, h.fleetConfig(fleetOpts{concurrency: 8, fetchers: 4, work: 3 * time.Second}))
	client := asynq.NewClientFromRedisClient(h.qrdb)
	t.Cleanup(func() { _ = client.Close() })
	const n = 8
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("orphan-%d", i)
		_, err := client.Enqueue(asynq.NewTask("chaos:record", []byte(fmt.Sprintf(`{"seq":%d}`, i))), asynq.TaskID(ids[i]), asynq.MaxRetry(3))
		require.NoError(t, err)
	}
	ctx := context.Background()
	require.Eventually(t, func() bool {
		require.NoError(t, h.recorder.poll(ctx))
		return len(h.recorder.byID) == n
	}, 20*time.Second, 50*time.Millisecond, "the 8 tasks did not all start")
	w := h.workers[0]
	_, err := w.kill()
	require.NoError(t, err)

	// asynq's recoverer takes leases that expired 30 s ago or more; age them
	// now rather than wait a minute.
	leases := "asynq:{default}:lease"
	members, err := h.qrdb.ZRange(ctx, leases, 0, -1).Result()
	require.NoError(t, err)
	require.ElementsMatch(t, ids, members, "the orphans hold leases")
	for _, m := range members {
		require.NoError(t, h.qrdb.ZAddXX(ctx, leases, redis.Z{Score: float64(time.Now().Add(-time.Minute).Unix()), Member: m}).Err())
	}
	restarted := time.Now()
	require.NoError(t, w.start())
	h.waitReady(0, 30*time.Second)
	require.Eventually(t, func() bool {
		require.NoError(t, h.recorder.poll(ctx))
		for _, id := range ids {
			as := h.recorder.byID[id]
			if len(as) < 2 || !as[len(as)-1].finished() {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, "every orphan runs again")
	for _, id := range ids {
		as := h.recorder.byID[id]
		require.Len(t, as, 2, id)
		require.False(t, as[0].finished(), "%s: the first run was cut short", id)
		require.Equal(t, as[0].retry+1, as[1].retry, "%s: retried once, by one recoverer", id)
	}
	log := w.logTail(1 << 20)
	require.NotContains(t, log, "NOT FOUND", "recoverers raced")
	require.NotContains(t, log, "could not retry lease expired task")
	fmt.Printf("fleet: %d orphans of a SIGKILLed worker (4 fetchers) ran again %s after its restart; recoverer race warnings: %d\n",
		n, time.Since(restarted).Round(time.Millisecond), strings.Count(log, "NOT FOUND"))
}

// TestAcksSurviveRedisKill SIGKILLs the queue Redis (AOF, appendfsync
// always) for a second while a worker completes 200 tasks, then SIGKILLs
// the worker ackWithin after Redis is back, as TestChaos's schedule does.
// Every task whose handler returned before the worker's kill (before,
// during or after the outage; ackSettle before it) runs once: the acknowledgements that failed
// in the outage land as soon as the queue pool reaches Redis again, not at
// asynq's syncer's next round up to 5 s later, which the worker's kill
// would have cut off. (The tasks in flight at the worker's kill run again;
// leases are aged so that the restarted worker's recoverer takes them at
// once.)
//
// ackWithin allows for go-redis' pool: after PoolSize failed dials it
// refuses new ones and redials once a second in the background, so the
// queue pool reaches a Redis that is back within about a second.
const ackWithin = 2 * time.Second

// ackSettle is how long an acknowledgement may trail its task's finish
// while Redis is up, on a loaded machine.
const ackSettle = 500 * time.Millisecond

func TestAcksSurviveRedisKill(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos suite: skipped with -short")
	}
	t.Parallel()
	h := setup(t)
	h.startWorkers(1, h.fleetConfig(fleetOpts{concurrency: 10, work: 300 * time.Millisecond}))
	w := h.workers[0]
	client := asynq.NewClientFromRedisClient(h.qrdb)
	t.Cleanup(func() { _ = client.Close() })
	const n = 200
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "ack-" + strconv.Itoa(i)
		_, err := client.Enqueue(asynq.NewTask("chaos:record", []byte(fmt.Sprintf(`{"seq":%d}`, i))), asynq.TaskID(ids[i]))
		require.NoError(t, err)
	}
	ctx := context.Background()
	finished := func(before time.Time) []string {
		var out []string
		for _, id := range ids {
			for _, a := range h.recorder.byID[id] {
				if a.finished() && a.end.Before(before) {
					out = append(out, id)
					break
				}
			}
		}
		return out
	}
	inFlight := func() int {
		k := 0
		for _, as := range h.recorder.byID {
			if !as[len(as)-1].finished() {
				k++
			}
		}
		return k
	}
	// Redis dies with handlers running, which return during the outage.
	require.Eventually(t, func() bool {
		require.NoError(t, h.recorder.poll(ctx))
		return len(finished(time.Now())) >= n/4 && inFlight() >= 5
	}, 30*time.Second, 5*time.Millisecond)
	killAt := time.Now()
	h.redisOutage(time.Second, nil)
	back := time.Now()
	time.Sleep(time.Until(back.Add(ackWithin)))
	workerKill := time.Now()
	_, err := w.kill()
	require.NoError(t, err)
	require.NoError(t, h.recorder.poll(ctx))
	inOutage := len(finished(back)) - len(finished(killAt))
	// A task that finished just before the worker's kill may not have been
	// acknowledged yet, Redis up or not (chaos_test's causeWorkerKillAck).
	acked := finished(workerKill.Add(-ackSettle))

	// Age the leases of the tasks left active, so that the restarted
	// worker's recoverer takes them at once instead of in a minute.
	leases := "asynq:{default}:lease"
	members, err := h.qrdb.ZRange(ctx, leases, 0, -1).Result()
	require.NoError(t, err)
	for _, m := range members {
		require.NoError(t, h.qrdb.ZAddXX(ctx, leases, redis.Z{Score: float64(time.Now().Add(-time.Minute).Unix()), Member: m}).Err())
	}
	require.NoError(t, w.start())
	h.waitReady(0, 30*time.Second)
	require.Eventually(t, func() bool {
		require.NoError(t, h.recorder.poll(ctx))
		q, err := h.queueInfo()
		return err == nil && len(finished(time.Now())) == n && unfinished(q) == 0
	}, 60*time.Second, 250*time.Millisecond, "the tasks did not all run")
	twice, finishedTwice := 0, 0
	for _, id := range ids {
		if len(h.recorder.byID[id]) > 1 {
			twice++
		}
	}
	for _, id := range acked {
		if len(h.recorder.byID[id]) > 1 {
			finishedTwice++
		}
	}
	fmt.Printf("fleet: redis SIGKILL (1 s) then worker SIGKILL 2 s after: %d of %d tasks finished before the worker's kill (%d of them in the outage), "+
		"%d left active at the kill, %d ran twice, %d of them among the finished\n", len(acked), n, inOutage, len(members), twice, finishedTwice)
	for _, id := range acked {
		require.Len(t, h.recorder.byID[id], 1, "%s finished before the worker's kill and ran again", id)
	}
	require.Positive(t, inOutage, "no handler returned during the outage: the test proved nothing")
}
