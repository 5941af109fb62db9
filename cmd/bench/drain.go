package main

import (
	"context"
	"fmt"
	"time"
)

// Waits of the child workers.
const (
	childReady = readyWait + 5*time.Second
	childStop  = 60 * time.Second
)

// settle lets a fresh worker's start-up traffic pass before a measurement
// window: 2 s, or 500 ms with -quick.
func (h *harness) settle() time.Duration {
	if h.opts.quick {
		return 500 * time.Millisecond
	}
	return 2 * time.Second
}

// drain times a worker draining a pre-filled queue of n tasks at
// concurrency c, from the first task's start to the n-th's.
func (h *harness) drain(ctx context.Context, side string, c int) error {
	n := h.opts.n
	if n < 2 {
		return fmt.Errorf("-n %d: the drain needs at least 2 tasks", n)
	}
	if err := h.flush(ctx); err != nil {
		return err
	}
	if _, err := enqueueN(ctx, n, h.opts.enqueueParallel, h.client.EnqueueContext); err != nil {
		return fmt.Errorf("pre-fill: %w", err)
	}
	if err := h.expectQueue(n); err != nil {
		return fmt.Errorf("pre-fill: %w", err)
	}
	w, err := openWindow(ctx, h.rdb)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("drain-c%d", c)
	ch, err := h.startChild(side+" "+what, childSpec{side: side, redisURL: h.url, concurrency: c, n: n,
		cpuProfile: h.profile(side, what)})
	if err != nil {
		return err
	}
	defer ch.kill()
	if _, err := ch.await("ready", childReady); err != nil {
		return err
	}
	done, err := ch.await("done", time.Minute+time.Duration(n)*time.Second/500)
	if err != nil {
		return err
	}
	_, hwm, err := procMem(ch.pid())
	if err != nil {
		return err
	}
	if err := ch.stop(childStop); err != nil {
		return err
	}
	cmds, err := w.end(ctx)
	if err != nil {
		return err
	}
	if err := h.expectQueue(0); err != nil {
		return fmt.Errorf("after the drain: %w", err)
	}
	elapsed := time.Duration(done.LastNs - done.FirstNs)
	if elapsed <= 0 {
		return fmt.Errorf("drain of %d tasks took no measurable time", n)
	}
	tps := float64(n-1) / elapsed.Seconds()
	cpu := (done.CPULast - done.CPUFirst) / float64(n) * 1000
	cpt := float64(sumCalls(cmds)) / float64(n)
	h.add(side, fmt.Sprintf("drain_c%d_lifetime_s", c), ch.lifetime().Seconds())
	h.add(side, fmt.Sprintf("drain_c%d_tasks_per_s", c), tps)
	h.add(side, fmt.Sprintf("drain_c%d_cpu_s_per_1k", c), cpu)
	h.add(side, fmt.Sprintf("drain_c%d_redis_cpu_s_per_1k", c), w.cpu()/float64(n)*1000)
	h.add(side, fmt.Sprintf("drain_c%d_commands_per_task", c), cpt)
	h.add(side, fmt.Sprintf("drain_c%d_scripts_per_task", c), float64(scriptCalls(cmds))/float64(n))
	h.add(side, fmt.Sprintf("drain_c%d_peak_rss_mb", c), mb(hwm))
	if ch.logPath != "" {
		h.add(side, fmt.Sprintf("drain_c%d_log_bytes_per_task", c), float64(ch.logBytes())/float64(n))
	}
	h.breakdown(side, fmt.Sprintf("drain c=%d, calls per task", c), perUnit(cmds, float64(n)))
	h.logf("%-8s drain c=%-3d %8.0f tasks/s  %.3f CPU s/1k  Redis %.3f CPU s/1k  %.2f cmds/task  peak RSS %.1f MB",
		side, c, tps, cpu, w.cpu()/float64(n)*1000, cpt, mb(hwm))
	return nil
}

// expectQueue checks that the bench queue holds n pending tasks and none
// active, retrying or archived.
func (h *harness) expectQueue(n int) error {
	qi, err := h.insp.GetQueueInfo(queueName)
	if err != nil {
		return err
	}
	if qi.Pending != n || qi.Active != 0 || qi.Retry != 0 || qi.Archived != 0 {
		return fmt.Errorf("queue %s: pending %d active %d retry %d archived %d, want %d pending",
			queueName, qi.Pending, qi.Active, qi.Retry, qi.Archived, n)
	}
	return nil
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }
