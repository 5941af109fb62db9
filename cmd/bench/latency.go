package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// latency streams tasks at -latency-rate from a plain asynq.Client and
// takes percentiles of the time from enqueue to handler start.
func (h *harness) latency(ctx context.Context, side string) error {
	if err := h.flush(ctx); err != nil {
		return err
	}
	rate, d := h.opts.latencyRate, h.opts.latencyDuration
	k := max(1, int(float64(rate)*d.Seconds()))
	ch, err := h.startChild(side+" latency", childSpec{side: side, redisURL: h.url,
		concurrency: h.opts.latencyConcurrency, n: k, record: true, cpuProfile: h.profile(side, "latency")})
	if err != nil {
		return err
	}
	defer ch.kill()
	if _, err := ch.await("ready", childReady); err != nil {
		return err
	}
	if err := sleep(ctx, h.settle()); err != nil {
		return err
	}
	elapsed, err := produce(ctx, h.client, rate, k)
	if err != nil {
		return err
	}
	done, err := ch.await("done", d+time.Minute)
	if err != nil {
		return err
	}
	// Nothing is measured after this, and the next phase wipes Redis: kill
	// the worker rather than wait up to 1.5 s for asynq's idle poll to end.
	ch.kill()
	achieved := float64(k) / elapsed.Seconds()
	h.add(side, "latency_p50_ms", done.P50ms)
	h.add(side, "latency_p99_ms", done.P99ms)
	h.add(side, "latency_max_ms", done.MaxMs)
	h.add(side, "latency_rate_per_s", achieved)
	h.logf("%-8s latency at %.0f/s: p50 %.2f ms  p99 %.2f ms  max %.2f ms", side, achieved, done.P50ms, done.P99ms, done.MaxMs)
	return nil
}

// produce enqueues k tasks at rate per second on an absolute schedule, each
// stamped with its enqueue time, and returns how long that took.
func produce(ctx context.Context, c enqueuer, rate, k int) (time.Duration, error) {
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := range k {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			if err := sleep(ctx, d); err != nil {
				return 0, err
			}
		}
		if _, err := c.EnqueueContext(ctx, newTask(time.Now())); err != nil {
			return 0, fmt.Errorf("latency stream: %w", err)
		}
	}
	return time.Since(start) + interval, nil
}

// sparse enqueues -sparse-n tasks from a plain asynq.Client, each after a
// random gap in -sparse-gap, into an idle worker, and takes percentiles of
// their start latency: what a worker that mostly waits gives.
func (h *harness) sparse(ctx context.Context, side string) error {
	if err := h.flush(ctx); err != nil {
		return err
	}
	k := h.opts.sparseN
	ch, err := h.startChild(side+" sparse", childSpec{side: side, redisURL: h.url,
		concurrency: h.opts.latencyConcurrency, n: k, record: true, cpuProfile: h.profile(side, "sparse")})
	if err != nil {
		return err
	}
	defer ch.kill()
	if _, err := ch.await("ready", childReady); err != nil {
		return err
	}
	if err := sleep(ctx, h.settle()); err != nil {
		return err
	}
	lo, hi := h.opts.sparseMin, h.opts.sparseMax
	for range k {
		gap := lo + time.Duration(rand.Int64N(int64(hi-lo)+1))
		if err := sleep(ctx, gap); err != nil {
			return err
		}
		if _, err := h.client.EnqueueContext(ctx, newTask(time.Now())); err != nil {
			return fmt.Errorf("sparse: %w", err)
		}
	}
	done, err := ch.await("done", time.Minute)
	if err != nil {
		return err
	}
	ch.kill()
	h.add(side, "sparse_p50_ms", done.P50ms)
	h.add(side, "sparse_p99_ms", done.P99ms)
	h.add(side, "sparse_max_ms", done.MaxMs)
	h.logf("%-8s sparse (%d tasks, gaps %s-%s): p50 %.2f ms  p99 %.2f ms  max %.2f ms", side, k, lo, hi, done.P50ms, done.P99ms, done.MaxMs)
	return nil
}
