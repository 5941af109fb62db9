package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/redistest"
)

// idleDown measures an idle worker (Redis commands/s, CPU, RSS), then kills
// Redis and measures its CPU while Redis is down. Each worker gets its own
// redis-server, so the only commands counted are its own; without
// redis-server on PATH, the idle worker uses the shared Redis and the down
// measurement is skipped.
func (h *harness) idleDown(ctx context.Context, side string) error {
	url, rdb := h.url, h.rdb
	var srv *redistest.Server
	if h.ownRedis {
		var err error
		if srv, err = redistest.New(h.redisOptions()); err != nil {
			return err
		}
		defer srv.Close()
		url = srv.URL()
		rdb = redis.NewClient(&redis.Options{Addr: srv.Addr()})
		defer rdb.Close()
	} else if err := h.flush(ctx); err != nil {
		return err
	}
	if err := registerQueue(ctx, url); err != nil {
		return err
	}
	if err := h.lifecycle(ctx, side, url, rdb); err != nil {
		return fmt.Errorf("start and stop: %w", err)
	}
	ch, err := h.startChild(side+" idle", childSpec{side: side, redisURL: url,
		concurrency: h.opts.latencyConcurrency, cpuProfile: h.profile(side, "idle-down")})
	if err != nil {
		return err
	}
	defer ch.kill()
	ready, err := ch.await("ready", childReady)
	if err != nil {
		return err
	}
	if err := sleep(ctx, h.settle()); err != nil {
		return err
	}
	w, err := openWindow(ctx, rdb)
	if err != nil {
		return err
	}
	cpuPct, err := cpuOver(ctx, ch.pid(), h.opts.idleDuration)
	if err != nil {
		return err
	}
	cmds, err := w.end(ctx)
	if err != nil {
		return err
	}
	rss, _, err := procMem(ch.pid())
	if err != nil {
		return err
	}
	perSec := float64(sumCalls(cmds)) / h.opts.idleDuration.Seconds()
	h.add(side, "idle_commands_per_s", perSec)
	h.add(side, "idle_cpu_pct", cpuPct)
	h.add(side, "idle_rss_mb", mb(rss))
	h.breakdown(side, "idle, calls per second", perUnit(cmds, h.opts.idleDuration.Seconds()))
	h.logf("%-8s idle: %.2f Redis cmds/s  CPU %.2f%%  RSS %.1f MB", side, perSec, cpuPct, mb(rss))
	if ready.Health != "" {
		if err := h.scrapes(ctx, side, ready.Health, rdb); err != nil {
			return err
		}
	}
	if srv == nil {
		ch.kill()
		return nil
	}

	// The first second is reported apart: it holds the switch from ready
	// to down, when a worker may spin until it notices the outage.
	srv.Kill()
	first := min(time.Second, h.opts.downDuration)
	firstPct, err := cpuOver(ctx, ch.pid(), first)
	if err != nil {
		return err
	}
	downPct := firstPct
	if rest := h.opts.downDuration - first; rest > 0 {
		restPct, err := cpuOver(ctx, ch.pid(), rest)
		if err != nil {
			return err
		}
		downPct = (firstPct*first.Seconds() + restPct*rest.Seconds()) / h.opts.downDuration.Seconds()
	}
	h.add(side, "down_cpu_pct", downPct)
	h.add(side, "down_cpu_first_s_pct", firstPct)
	h.logf("%-8s Redis down: CPU %.2f%% of one core over %s (first second %.2f%%)", side, downPct, h.opts.downDuration, firstPct)
	// Nothing is measured after this: kill the worker rather than wait for
	// bare asynq's shutdown, which retries its last writes for seconds.
	ch.kill()
	return nil
}

// registerQueue makes the bench queue known, as a real one is, with one
// task scheduled an hour ahead: the queue collector and /healthz then have
// a queue to report.
func registerQueue(ctx context.Context, url string) error {
	opt, err := asynq.ParseRedisURI(url)
	if err != nil {
		return err
	}
	c := asynq.NewClient(opt)
	defer c.Close()
	if _, err := c.EnqueueContext(ctx, newTask(time.Now()), asynq.ProcessIn(time.Hour)); err != nil {
		return fmt.Errorf("register queue: %w", err)
	}
	return nil
}

// scrapes counts the Redis commands that one GET of /metrics and one of
// /healthz cost taskhost: its metrics and health are read when scraped,
// not by loops of their own.
func (h *harness) scrapes(ctx context.Context, side, addr string, rdb *redis.Client) error {
	for _, path := range []string{"/metrics", "/healthz"} {
		w, err := openWindow(ctx, rdb)
		if err != nil {
			return err
		}
		if err := get(ctx, "http://"+addr+path); err != nil {
			return err
		}
		cmds, err := w.end(ctx)
		if err != nil {
			return err
		}
		key := "scrape_" + strings.TrimPrefix(path, "/") + "_commands"
		h.add(side, key, float64(sumCalls(cmds)))
		h.breakdown(side, "GET "+path+", calls", perUnit(cmds, 1))
		h.logf("%-8s GET %s: %d Redis cmds", side, path, sumCalls(cmds))
	}
	return nil
}

func get(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return err
}

// lifecycle counts the Redis commands of a worker that starts, connects and
// stops at once: what each worker process costs apart from its tasks and
// its loops.
func (h *harness) lifecycle(ctx context.Context, side, url string, rdb *redis.Client) error {
	w, err := openWindow(ctx, rdb)
	if err != nil {
		return err
	}
	ch, err := h.startChild(side+" start-stop", childSpec{side: side, redisURL: url,
		concurrency: h.opts.latencyConcurrency})
	if err != nil {
		return err
	}
	defer ch.kill()
	if _, err := ch.await("ready", childReady); err != nil {
		return err
	}
	if err := ch.stop(childStop); err != nil {
		return err
	}
	cmds, err := w.end(ctx)
	if err != nil {
		return err
	}
	h.add(side, "lifecycle_commands", float64(sumCalls(cmds)))
	h.add(side, "lifecycle_s", ch.lifetime().Seconds())
	h.breakdown(side, "start and stop, calls", perUnit(cmds, 1))
	h.logf("%-8s start and stop: %d Redis cmds in %s", side, sumCalls(cmds), ch.lifetime().Round(time.Millisecond))
	return nil
}

// cpuOver is the CPU of process pid over d, in percent of one core.
func cpuOver(ctx context.Context, pid int, d time.Duration) (float64, error) {
	c0, err := procCPU(pid)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := sleep(ctx, d); err != nil {
		return 0, err
	}
	c1, err := procCPU(pid)
	if err != nil {
		return 0, err
	}
	return 100 * (c1 - c0).Seconds() / time.Since(t0).Seconds(), nil
}
