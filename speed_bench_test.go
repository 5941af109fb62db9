package taskhost_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/redistest"
)

// Speed benchmarks (issue 9): bare asynq against the runtime on the same
// redis-server in the same run, rounds interleaved, each figure the median.
//
//	go test -run '^$' -bench BenchmarkSpeed -benchtime 1x .
//
// Environment: SPD_N (tasks per drain, 50000), SPD_ROUNDS (3),
// SPD_RATE (tasks/s of the steady stream, 1000), SPD_LAT (its length, 5s),
// SPD_IDLE (idle window, 10s), SPD_SIDES (comma-separated side names).

// spdSide is one worker set-up under test.
type spdSide struct {
	name     string
	bare     bool
	fetchers int
	wakeup   string
	pool     int  // redis.pool_size; 0 keeps the default
	noAP     bool // worker.autopipeline: false
}

var spdAllSides = []spdSide{
	{name: "bare", bare: true},
	// The runtime as it was before issue 9: one server, asynq's own poll,
	// scripts one by one.
	{name: "th-plain", fetchers: 1, wakeup: "off", noAP: true},
	// The defaults (wake-ups auto, autopipeline on) with N fetchers.
	{name: "th-f1", fetchers: 1, wakeup: "auto"},
	{name: "th-f2", fetchers: 2, wakeup: "auto"},
	{name: "th-f3", fetchers: 3, wakeup: "auto"},
	{name: "th-f4", fetchers: 4, wakeup: "auto"},
	{name: "th-f6", fetchers: 6, wakeup: "auto"},
	{name: "th-f8", fetchers: 8, wakeup: "auto"},
	// Without the autopipeline.
	{name: "th-noap-f1", fetchers: 1, wakeup: "auto", noAP: true},
	{name: "th-noap-f2", fetchers: 2, wakeup: "auto", noAP: true},
	{name: "th-noap-f4", fetchers: 4, wakeup: "auto", noAP: true},
	// The fallback without notifications.
	{name: "th-poll-f1", fetchers: 1, wakeup: "poll"},
	{name: "th-poll-f4", fetchers: 4, wakeup: "poll"},
	// Queue pool sizes (redis.pool_size, default 20).
	{name: "th-f4-pool10", fetchers: 4, wakeup: "auto", pool: 10},
	{name: "th-f4-pool50", fetchers: 4, wakeup: "auto", pool: 50},
	{name: "th-f4-pool100", fetchers: 4, wakeup: "auto", pool: 100},
}

func spdSides(b *testing.B, def string) []spdSide {
	want := spdGetenv("SPD_SIDES", def)
	var out []spdSide
	for _, n := range strings.Split(want, ",") {
		i := slices.IndexFunc(spdAllSides, func(s spdSide) bool { return s.name == strings.TrimSpace(n) })
		if i < 0 {
			b.Fatalf("unknown side %q", n)
		}
		out = append(out, spdAllSides[i])
	}
	return out
}

func spdGetenv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func spdEnvInt(b *testing.B, name string, def int) int {
	n, err := strconv.Atoi(spdGetenv(name, strconv.Itoa(def)))
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	return n
}

func spdEnvDur(b *testing.B, name string, def time.Duration) time.Duration {
	d, err := time.ParseDuration(spdGetenv(name, def.String()))
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	return d
}

// spdWorker starts side on the Redis at addr with handler h and returns its
// stop function.
func spdWorker(b *testing.B, addr string, side spdSide, concurrency int, h asynq.HandlerFunc) func() {
	b.Helper()
	if side.bare {
		srv := asynq.NewServer(asynq.RedisClientOpt{Addr: addr}, asynq.Config{
			Concurrency: concurrency,
			Queues:      map[string]int{"default": 1},
			LogLevel:    asynq.WarnLevel,
		})
		if err := srv.Start(h); err != nil {
			b.Fatal(err)
		}
		return srv.Shutdown
	}
	sink := fmt.Sprintf("%s/%s/%d", b.Name(), side.name, time.Now().UnixNano())
	spdSinks.Store(sink, h)
	cfg := taskhost.DefaultConfig()
	host, port := splitHostPort(b, addr)
	cfg.Redis.Host, cfg.Redis.Port = host, port
	cfg.Health.Addr = "127.0.0.1:0"
	cfg.Log.Level = "info" // every middleware on, as cmd/bench runs it; written to io.Discard
	cfg.Worker.Concurrency = concurrency
	cfg.Worker.Fetchers = side.fetchers
	cfg.Worker.Wakeup = side.wakeup
	if side.pool > 0 {
		cfg.Redis.PoolSize = side.pool
	}
	cfg.Plugins = map[string]map[string]any{"spd-probe": {"sink": sink}}
	cfg.Worker.AutoPipeline = !side.noAP
	rt, err := taskhost.New(cfg, taskhost.Options{LogOutput: io.Discard, Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rt.State().String() != "ready" || (side.wakeup == "auto" && rt.WakeupSource() != taskhost.WakeupNotify) {
		if time.Now().After(deadline) {
			b.Fatalf("%s: not ready: %s, %s", side.name, rt.State(), rt.WakeupSource())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return func() {
		_ = rt.Stop(context.Background())
		spdSinks.Delete(sink)
	}
}

// spdRedis starts the benchmark's Redis, with DEBUG RELOAD allowed from
// loopback so that a pre-filled queue can be restored between drains.
func spdRedis(b *testing.B) (*redistest.Server, *redis.Client) {
	s := redistest.Start(b, redistest.Options{Args: []string{"--enable-debug-command", "local", "--save", ""}})
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), ReadTimeout: time.Minute})
	b.Cleanup(func() { _ = c.Close() })
	return s, c
}

// spdFill enqueues n no-op tasks with a plain client and snapshots them.
func spdFill(b *testing.B, addr string, rdb *redis.Client, n int) {
	b.Helper()
	ctx := context.Background()
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	c := asynq.NewClient(asynq.RedisClientOpt{Addr: addr, PoolSize: 32})
	defer c.Close()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if _, err := c.Enqueue(asynq.NewTask(spdType, nil)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := rdb.Save(ctx).Err(); err != nil {
		b.Fatal(err)
	}
}

// spdRestore brings the pre-filled snapshot back and resets the stats.
func spdRestore(b *testing.B, rdb *redis.Client) {
	b.Helper()
	ctx := context.Background()
	if err := rdb.Do(ctx, "DEBUG", "RELOAD", "NOSAVE").Err(); err != nil {
		b.Fatal(err)
	}
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
}

type spdCounters struct {
	cmds     int64
	byName   map[string]int64
	redisCPU float64 // seconds
}

// perSecond formats after-before per command and second, largest first.
func (after spdCounters) perSecond(before spdCounters, d time.Duration) string {
	type kv struct {
		k string
		v float64
	}
	var out []kv
	for k, v := range after.byName {
		if n := v - before.byName[k]; n > 0 {
			out = append(out, kv{k, float64(n) / d.Seconds()})
		}
	}
	slices.SortFunc(out, func(a, b kv) int { return int(b.v*1000) - int(a.v*1000) })
	var sb strings.Builder
	for _, e := range out {
		fmt.Fprintf(&sb, "%s %.1f  ", e.k, e.v)
	}
	return sb.String()
}

func spdRedisCounters(b *testing.B, rdb *redis.Client) spdCounters {
	b.Helper()
	ctx := context.Background()
	stats, err := rdb.Info(ctx, "commandstats", "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	c := spdCounters{byName: map[string]int64{}}
	for _, line := range strings.Split(stats, "\n") {
		line = strings.TrimSpace(line)
		name, rest, _ := strings.Cut(line, ":")
		switch {
		case strings.HasPrefix(name, "cmdstat_") && name != "cmdstat_info":
			for _, kv := range strings.Split(rest, ",") {
				if v, ok := strings.CutPrefix(kv, "calls="); ok {
					n, _ := strconv.ParseInt(v, 10, 64)
					c.cmds += n
					c.byName[strings.TrimPrefix(name, "cmdstat_")] = n
				}
			}
		case name == "used_cpu_user" || name == "used_cpu_sys":
			f, _ := strconv.ParseFloat(rest, 64)
			c.redisCPU += f
		}
	}
	return c
}

func spdProcessCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkSpeedDrain drains SPD_N pre-filled no-op tasks at concurrency 50
// and 200 with each side, rounds interleaved, and reports per side the
// median tasks/s, Go CPU µs per task, Redis CPU µs per task and Redis
// commands per task.
func BenchmarkSpeedDrain(b *testing.B) {
	n := spdEnvInt(b, "SPD_N", 50000)
	rounds := spdEnvInt(b, "SPD_ROUNDS", 3)
	sides := spdSides(b, "bare,th-plain,th-f1,th-f2,th-f4,th-noap-f4")
	s, rdb := spdRedis(b)
	spdFill(b, s.Addr(), rdb, n)
	for _, conc := range []int{50, 200} {
		b.Run(fmt.Sprintf("c%d", conc), func(b *testing.B) {
			rate := map[string][]float64{}
			goCPU := map[string][]float64{}
			rCPU := map[string][]float64{}
			cmds := map[string][]float64{}
			for range b.N {
				for range rounds {
					for _, side := range sides {
						spdRestore(b, rdb)
						// The clock runs from the first task's start to the
						// last one's, so that start-up is not counted; CPU and
						// commands are counted from the worker's start.
						var done atomic.Int64
						var first, last atomic.Int64
						finished := make(chan struct{})
						h := func(context.Context, *asynq.Task) error {
							first.CompareAndSwap(0, time.Now().UnixNano())
							if done.Add(1) == int64(n) {
								last.Store(time.Now().UnixNano())
								close(finished)
							}
							return nil
						}
						before := spdRedisCounters(b, rdb)
						cpu0 := spdProcessCPU()
						stop := spdWorker(b, s.Addr(), side, conc, h)
						select {
						case <-finished:
						case <-time.After(5 * time.Minute):
							b.Fatalf("%s: drained %d of %d", side.name, done.Load(), n)
						}
						cpu := spdProcessCPU() - cpu0
						after := spdRedisCounters(b, rdb)
						stop()
						el := time.Duration(last.Load() - first.Load())
						rate[side.name] = append(rate[side.name], float64(n)/el.Seconds())
						goCPU[side.name] = append(goCPU[side.name], float64(cpu.Microseconds())/float64(n))
						rCPU[side.name] = append(rCPU[side.name], (after.redisCPU-before.redisCPU)*1e6/float64(n))
						cmds[side.name] = append(cmds[side.name], float64(after.cmds-before.cmds)/float64(n))
					}
				}
			}
			base := median(rate["bare"])
			for _, side := range sides {
				r := median(rate[side.name])
				b.ReportMetric(r, side.name+"-tasks/s")
				if base > 0 && !side.bare {
					b.ReportMetric(r/base, side.name+"-x")
				}
				b.ReportMetric(median(goCPU[side.name]), side.name+"-goCPUµs/task")
				b.ReportMetric(median(rCPU[side.name]), side.name+"-redisCPUµs/task")
				b.ReportMetric(median(cmds[side.name]), side.name+"-cmds/task")
				b.Logf("%-10s tasks/s %v", side.name, rate[side.name])
			}
		})
	}
}

// BenchmarkSpeedLatency enqueues with a plain asynq client at a steady
// SPD_RATE tasks/s for SPD_LAT and reports per side the median of each
// round's p50 and p99 start latency (enqueue to handler), in ms.
func BenchmarkSpeedLatency(b *testing.B) {
	rate := spdEnvInt(b, "SPD_RATE", 1000)
	dur := spdEnvDur(b, "SPD_LAT", 5*time.Second)
	rounds := spdEnvInt(b, "SPD_ROUNDS", 3)
	sides := spdSides(b, "bare,th-plain,th-f1,th-f4,th-poll-f4")
	s, rdb := spdRedis(b)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: s.Addr()})
	b.Cleanup(func() { _ = client.Close() })
	p50s, p99s, cmdps := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	for range b.N {
		for range rounds {
			for _, side := range sides {
				_ = rdb.FlushAll(context.Background()).Err()
				var mu sync.Mutex
				var lat []time.Duration
				h := func(_ context.Context, t *asynq.Task) error {
					sent := time.Unix(0, int64(binary.BigEndian.Uint64(t.Payload())))
					d := time.Since(sent)
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
					return nil
				}
				stop := spdWorker(b, s.Addr(), side, 10, h)
				time.Sleep(200 * time.Millisecond) // idle before the stream
				before := spdRedisCounters(b, rdb)
				total := int(float64(rate) * dur.Seconds())
				t0 := time.Now()
				for i := range total {
					if d := time.Until(t0.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
						time.Sleep(d)
					}
					p := binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
					if _, err := client.Enqueue(asynq.NewTask(spdType, p)); err != nil {
						b.Fatal(err)
					}
				}
				deadline := time.Now().Add(10 * time.Second)
				for {
					mu.Lock()
					got := len(lat)
					mu.Unlock()
					if got >= total || time.Now().After(deadline) {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				after := spdRedisCounters(b, rdb)
				stop()
				mu.Lock()
				p50s[side.name] = append(p50s[side.name], float64(percentile(lat, 0.5).Microseconds())/1000)
				p99s[side.name] = append(p99s[side.name], float64(percentile(lat, 0.99).Microseconds())/1000)
				cmdps[side.name] = append(cmdps[side.name], float64(after.cmds-before.cmds)/float64(len(lat)))
				mu.Unlock()
			}
		}
	}
	for _, side := range sides {
		b.ReportMetric(median(p50s[side.name]), side.name+"-p50ms")
		b.ReportMetric(median(p99s[side.name]), side.name+"-p99ms")
		b.ReportMetric(median(cmdps[side.name]), side.name+"-cmds/task")
		b.Logf("%-10s p50 %v p99 %v", side.name, p50s[side.name], p99s[side.name])
	}
}

// BenchmarkSpeedIdle measures each side's Redis commands per second while
// idle over SPD_IDLE, after a settling second.
func BenchmarkSpeedIdle(b *testing.B) {
	window := spdEnvDur(b, "SPD_IDLE", 10*time.Second)
	sides := spdSides(b, "bare,th-plain,th-f1,th-f2,th-f4,th-poll-f4")
	s, rdb := spdRedis(b)
	for range b.N {
		for _, side := range sides {
			_ = rdb.FlushAll(context.Background()).Err()
			stop := spdWorker(b, s.Addr(), side, 10, func(context.Context, *asynq.Task) error { return nil })
			time.Sleep(time.Second)
			before := spdRedisCounters(b, rdb)
			time.Sleep(window)
			after := spdRedisCounters(b, rdb)
			stop()
			b.ReportMetric(float64(after.cmds-before.cmds)/window.Seconds(), side.name+"-cmds/s")
			b.Logf("%-10s idle cmds/s: %s", side.name, after.perSecond(before, window))
		}
	}
}
