package chaostest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestChaos runs three workers and a producer while Redis is SIGKILLed and
// restarted three times, one worker is SIGKILLed twice, one gets SIGTERM,
// and the producer is SIGKILLed once. Every task must be executed at least
// once and the queue must end empty. It prints the one-line result.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos suite: skipped with -short")
	}
	t.Parallel()
	p := prof
	begin := time.Now()
	h := setup(t)

	ids := make([]string, p.tasks)
	for i := range ids {
		ids[i] = taskID(i)
	}

	h.startWorkers(3, h.workerConfig(10, p.work, ""))
	// w2 is never killed: its /readyz shows each outage.
	poller := startReadyzPoller(h.health[2], 50*time.Millisecond)
	stopPoller := sync.OnceFunc(poller.stop)
	t.Cleanup(stopPoller)

	dir := t.TempDir()
	h.producer = newProc(t, "producer", producerBin,
		"-redis-url", h.queue.URL(),
		"-outbox", filepath.Join(dir, "outbox.db"),
		"-progress", filepath.Join(dir, "progress"),
		"-n", strconv.Itoa(p.tasks),
		"-rate", strconv.FormatFloat(p.rate, 'f', -1, 64))
	h.producer.mayFinish = true // it exits 0 once its outbox is flushed
	start := time.Now()
	require.NoError(t, h.producer.start())

	// The faults, in order; each runs to its end before the next.
	at := func(d time.Duration) { time.Sleep(time.Until(start.Add(d))) }
	at(p.workerKill1)
	h.killWorker(0, p.workerDown)
	at(p.redis1)
	h.redisOutage(p.outages[0], nil)
	at(p.redis2)
	h.redisOutage(p.outages[1], func() {
		// The producer dies while it holds tasks in its file outbox, and
		// comes back on the same file while Redis is still down.
		time.Sleep(min(p.outages[1]/4, time.Second))
		h.killProducer(min(p.outages[1]/4, time.Second))
	})
	at(p.workerKill2)
	h.killWorker(0, p.workerDown)
	at(p.workerTerm)
	h.termWorker(1)
	at(p.redis3)
	h.redisOutage(p.outages[2], nil)
	faultsDone := time.Now()

	code, err := h.producer.wait(p.drainWithin)
	require.NoError(t, err, "producer:\n%s", h.producer.logTail(3000))
	require.Equal(t, 0, code, "producer exit code:\n%s", h.producer.logTail(3000))
	t.Logf("producer finished %s after the last fault: %s", time.Since(faultsDone).Round(time.Millisecond),
		lastLine(h.producer.logTail(500), "producer:"))

	// Wait for every task to run and the queue to empty.
	ctx := context.Background()
	deadline := faultsDone.Add(p.drainWithin)
	var lastLog time.Time
	drained := false
	var qinfo string
	for time.Now().Before(deadline) {
		require.NoError(t, h.recorder.poll(ctx))
		done := h.recorder.executed(ids)
		q, err := h.queueInfo()
		if err == nil {
			qinfo = fmt.Sprintf("pending=%d active=%d scheduled=%d retry=%d archived=%d",
				q.Pending, q.Active, q.Scheduled, q.Retry, q.Archived)
			if done == len(ids) && unfinished(q) == 0 {
				drained = true
				break
			}
		} else {
			qinfo = err.Error()
		}
		if time.Since(lastLog) >= 10*time.Second {
			t.Logf("%s draining: executed %d/%d, queue %s", time.Now().Format("15:04:05"), done, len(ids), qinfo)
			lastLog = time.Now()
		}
		time.Sleep(250 * time.Millisecond)
	}
	drainedAfter := time.Since(faultsDone)
	require.NoError(t, h.recorder.poll(ctx))
	stopPoller()

	// The result.
	executed := h.recorder.executed(ids)
	lost := len(ids) - executed
	held, resumed := producerEvidence(t, filepath.Join(dir, "progress"), h.producer.logTail(1<<30))
	dups := h.recorder.duplicates(evidence{faults: h.faultList(), work: p.work, held: held, resumed: resumed})
	fmt.Printf("chaos: tasks=%d executed=%d lost=%d duplicates=%d redis_kills=%d worker_kills=%d\n",
		len(ids), executed, lost, len(dups), h.count(faultRedisKill), h.count(faultWorkerKill))
	h.logDetails(p, dups, poller, drainedAfter, time.Since(begin))

	require.Zero(t, lost, "tasks never executed, e.g. %v; queue %s", h.recorder.missing(ids, 20), qinfo)
	for _, d := range dups { // an outage longer than the lease is causeRedisKillLease
		require.NotEqual(t, causeRedisKill, d.cause, "%s: a completion that failed in an outage was not redone", d.dup.id)
	}
	require.True(t, drained, "the queue did not drain within %s of the last fault: %s", p.drainWithin, qinfo)
	q, err := h.queueInfo()
	require.NoError(t, err)
	require.Zero(t, q.Archived, "no chaos task may be archived")
	require.Len(t, h.recorder.byID, len(ids), "only the producer's task IDs may have run")
	require.Equal(t, executed+len(dups), h.recorder.count, "every execution is a first or a duplicate")

	// /readyz of the worker that was never killed reflected each outage.
	outages := h.outages()
	for i, f := range outages {
		seen, again := poller.reflected(f, outageWindowEnd(outages, i))
		require.True(t, seen, "/readyz of w2 never answered 503 during the outage at %s (%s)",
			f.at.Format("15:04:05.000"), f.end.Sub(f.at).Round(time.Millisecond))
		require.False(t, again.IsZero(), "/readyz of w2 did not answer 200 again after the outage at %s", f.at.Format("15:04:05.000"))
		if i+1 < len(outages) {
			require.True(t, again.Before(outages[i+1].at), "/readyz of w2 did not answer 200 between the outages at %s and %s",
				f.at.Format("15:04:05.000"), outages[i+1].at.Format("15:04:05.000"))
		}
	}

	// No process exited on its own, and every worker still stops cleanly.
	for _, w := range append(append([]*proc(nil), h.workers...), h.producer) {
		require.Empty(t, w.unexpectedExits(), "%s:\n%s", w.name, w.logTail(3000))
	}
	for _, w := range h.workers {
		_, err := w.signal(syscall.SIGTERM)
		require.NoError(t, err)
	}
	for _, w := range h.workers {
		code, err := w.wait(workerShutdown + 15*time.Second)
		require.NoError(t, err)
		require.Equal(t, 0, code, "%s exit code after SIGTERM:\n%s", w.name, w.logTail(2000))
	}
}

// logDetails logs the duplicates by cause and the timings.
func (h *harness) logDetails(p profile, dups []duplicate, poller *readyzPoller, drainedAfter, wall time.Duration) {
	t := h.t
	t.Logf("profile %s: %d tasks at %.0f/s, outages %v, worker work %s", p.name, p.tasks, p.rate, p.outages, p.work)
	byCause := map[string][]duplicate{}
	for _, d := range dups {
		byCause[d.cause] = append(byCause[d.cause], d)
	}
	causes := make([]string, 0, len(byCause))
	for c := range byCause {
		causes = append(causes, c)
	}
	sort.Strings(causes)
	for _, c := range causes {
		ds := byCause[c]
		var maxGap time.Duration
		for _, d := range ds {
			maxGap = max(maxGap, d.dup.start.Sub(d.prev.start))
		}
		t.Logf("duplicates: %d x %s (second run up to %s after the first)", len(ds), c, maxGap.Round(time.Millisecond))
	}
	for i, d := range dups {
		if i == 20 {
			t.Logf("... %d more duplicates", len(dups)-20)
			break
		}
		t.Logf("duplicate %s: first pid %d retry %d at %s (finished %v), again pid %d retry %d at %s: %s", d.dup.id,
			d.prev.pid, d.prev.retry, d.prev.start.Format("15:04:05.000"), d.prev.finished(),
			d.dup.pid, d.dup.retry, d.dup.start.Format("15:04:05.000"), d.cause)
	}
	outages := h.outages()
	for i, f := range outages {
		seen, again := poller.reflected(f, outageWindowEnd(outages, i))
		ready := "never"
		if !again.IsZero() {
			ready = again.Sub(f.end).Round(time.Millisecond).String() + " after the restart"
		}
		t.Logf("outage at %s for %s: /readyz 503 seen=%v, 200 again %s", f.at.Format("15:04:05.000"),
			f.end.Sub(f.at).Round(time.Millisecond), seen, ready)
	}
	cut := map[int]int{}
	for _, as := range h.recorder.byID {
		for _, a := range as {
			if !a.finished() {
				cut[a.pid]++
			}
		}
	}
	t.Logf("executions cut short (started, never finished), by worker pid: %v", cut)
	syncs := 0
	for _, w := range h.workers {
		syncs += strings.Count(w.logTail(1<<30), "Will retry syncing")
	}
	t.Logf("completion acks that failed and were left to asynq's syncer (worker logs): %d", syncs)
	t.Logf("drained %s after the last fault; wall time %s", drainedAfter.Round(time.Millisecond), wall.Round(time.Millisecond))
	if dir := os.Getenv("CHAOS_LOG_DIR"); dir != "" {
		for _, p := range append(append([]*proc(nil), h.workers...), h.producer) {
			_ = os.WriteFile(filepath.Join(dir, p.name+".log"), []byte(p.logTail(1<<30)), 0o644)
		}
		t.Logf("child logs copied to %s", dir)
	}
}

// producerEvidence reads which task IDs the producer's outbox held (from its
// progress file) and the first task ID of each restarted producer (from its
// log).
func producerEvidence(t *testing.T, progressPath, log string) (held map[string]bool, resumed []string) {
	t.Helper()
	b, err := os.ReadFile(progressPath)
	require.NoError(t, err)
	held = map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] == "h" {
			if seq, err := strconv.Atoi(f[0]); err == nil {
				held[taskID(seq)] = true
			}
		}
	}
	for _, m := range regexp.MustCompile(`msg="producer started" from=(\d+)`).FindAllStringSubmatch(log, -1) {
		if seq, _ := strconv.Atoi(m[1]); seq > 0 {
			resumed = append(resumed, taskID(seq))
		}
	}
	return held, resumed
}

// lastLine returns the last line of s that starts with prefix.
func lastLine(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], prefix) {
			return lines[i]
		}
	}
	return ""
}

// outageWindowEnd is when a 503 can still be due to outage i: up to 3 s
// after Redis is back (the monitor's backoff), but not into the next outage.
func outageWindowEnd(outages []fault, i int) time.Time {
	end := outages[i].end.Add(3 * time.Second)
	if i+1 < len(outages) && outages[i+1].at.Before(end) {
		end = outages[i+1].at
	}
	return end
}

// taskID is the ID the producer gives task seq (its -prefix is "chaos-").
func taskID(seq int) string { return fmt.Sprintf("chaos-%06d", seq) }
