package taskhost

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
)

// shaRecorder records the SHA-1 of every EVALSHA whose keys are those of
// asynq's dequeue script.
type shaRecorder struct {
	mu   sync.Mutex
	seen map[string]int
}

func (r *shaRecorder) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *shaRecorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		if len(args) >= 7 && cmd.Name() == "evalsha" {
			keys := []string{}
			for _, a := range args[3:7] {
				s, _ := a.(string)
				keys = append(keys, s)
			}
			if dequeueShaped(keys) {
				r.mu.Lock()
				r.seen[args[1].(string)]++
				r.mu.Unlock()
			}
		}
		return next(ctx, cmd)
	}
}

func (r *shaRecorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestDequeueScriptPinned runs a plain asynq server and checks that the
// dequeue script it sends is the one the wake-ups are pinned to. When an
// asynq upgrade changes the script, this fails: check that the script still
// returns nil for "empty or paused" and a message otherwise, that asynq
// still runs it once per queue per round, then update dequeueScriptSHA.
func TestDequeueScriptPinned(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	rec := &shaRecorder{seen: map[string]int{}}
	rdb.AddHook(rec)
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:       1,
		Queues:            map[string]int{"a": 1, "b": 1},
		TaskCheckInterval: 10 * time.Millisecond,
		LogLevel:          asynq.FatalLevel,
	})
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })))
	t.Cleanup(srv.Shutdown)
	require.Eventually(t, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.seen) > 0
	}, 5*time.Second, 5*time.Millisecond)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for sha := range rec.seen {
		require.Equal(t, dequeueScriptSHA, sha,
			"asynq's dequeue script changed (asynq upgrade?): re-check wakeup.go against it and update dequeueScriptSHA")
	}
}

func TestMergeNotifyFlags(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, out string }{
		{"", "Kl"},
		{"Ex", "ExKl"},
		{"Kl", "Kl"},
		{"KA", "KA"},
		{"AE", "AEK"},
		{"lE", "lEK"},
	} {
		require.Equal(t, c.out, mergeNotifyFlags(c.in), c.in)
		require.True(t, hasNotifyFlags(mergeNotifyFlags(c.in)), c.in)
	}
	require.False(t, hasNotifyFlags("Ex"))
	require.False(t, hasNotifyFlags("El"))
	require.False(t, hasNotifyFlags("K$"))
}

func TestConcurrencyShares(t *testing.T) {
	t.Parallel()
	require.Equal(t, []int{10}, concurrencyShares(10, 1))
	require.Equal(t, []int{5, 5}, concurrencyShares(10, 2))
	require.Equal(t, []int{4, 3, 3}, concurrencyShares(10, 3))
	require.Equal(t, []int{1, 1}, concurrencyShares(2, 4), "never a server without a worker")
	require.Equal(t, []int{1}, concurrencyShares(1, 0))
}

// Only the first server runs the once-per-process loops, and asynq's idle
// sleep shrinks only where the fetchClient waits instead.
func TestServerConfigs(t *testing.T) {
	t.Parallel()
	base := asynq.Config{Concurrency: 7, DelayedTaskCheckInterval: time.Second, HealthCheckFunc: func(error) {}}
	cs := serverConfigs(base, 3, true)
	require.Len(t, cs, 3)
	require.Equal(t, []int{3, 2, 2}, []int{cs[0].Concurrency, cs[1].Concurrency, cs[2].Concurrency})
	require.Equal(t, time.Second, cs[0].DelayedTaskCheckInterval)
	require.NotNil(t, cs[0].HealthCheckFunc)
	require.Zero(t, cs[0].JanitorInterval, "asynq's default")
	for _, c := range cs {
		require.Equal(t, asynqRecheck, c.TaskCheckInterval)
	}
	for _, c := range cs[1:] {
		require.Equal(t, quietInterval, c.DelayedTaskCheckInterval)
		require.Equal(t, quietInterval, c.JanitorInterval)
		require.Nil(t, c.HealthCheckFunc)
	}
	off := serverConfigs(base, 2, false)
	require.Zero(t, off[0].TaskCheckInterval, "asynq's own 1 s poll without wake-ups")
}

// A dequeue script that no longer matches the pinned SHA is still
// recognized by its keys, with one warning, so the wait (and with it the
// short asynq sleep) stays safe.
func TestFetchClientRecognizesDequeueByKeys(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	f := newFetchClient(nil, nil, nil, nil, []string{"default"}, time.Second, slog.New(slog.NewTextHandler(&logs, nil)))
	keys := []string{"asynq:{default}:pending", "asynq:{default}:paused", "asynq:{default}:active", "asynq:{default}:lease"}
	require.True(t, f.isDequeue(dequeueScriptSHA, keys))
	require.Empty(t, logs.String())
	require.True(t, f.isDequeue("0123", keys))
	require.True(t, f.isDequeue("4567", keys))
	require.Equal(t, 1, bytes.Count(logs.Bytes(), []byte("not the pinned")))
	require.False(t, f.isDequeue("0123", []string{"asynq:{default}:active", "asynq:{default}:lease"}))
}

// The fetchClient holds the last empty answer of a round, and on a wake-up
// answers with the round run again: a task pushed meanwhile is returned at
// once, from whichever queue it is in.
func TestFetchClientAnswersWithTheRoundRunAgain(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	hub := newWakeHub(hubConfig{rdb: rdb, ready: func() bool { return true }, await: func(context.Context) bool { return true },
		queues: []string{"a", "b"}, fetchers: 1, pollOnly: "test", log: slog.New(slog.DiscardHandler)})
	halt := make(chan struct{})
	f := newFetchClient(rdb, hub, nil, halt, []string{"a", "b"}, 5*time.Second, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	// A stand-in with the dequeue script's keys and answers: pop from the
	// pending list unless paused.
	script := redis.NewScript(`if redis.call("EXISTS", KEYS[2]) == 0 then return redis.call("RPOP", KEYS[1]) end return nil`)
	require.NoError(t, script.Load(ctx, rdb).Err())
	call := func(q string) *redis.Cmd {
		keys := []string{"asynq:{" + q + "}:pending", "asynq:{" + q + "}:paused", "asynq:{" + q + "}:active", "asynq:{" + q + "}:lease"}
		// Recognized by keys, as the SHA differs from asynq's.
		return f.EvalSha(ctx, script.Hash(), keys, 0, "asynq:{"+q+"}:t:")
	}
	require.ErrorIs(t, call("a").Err(), redis.Nil, "first of the round: answered at once")
	go func() {
		time.Sleep(50 * time.Millisecond)
		_ = rdb.LPush(ctx, "asynq:{a}:pending", "task-1").Err()
		hub.tokens <- "asynq:{a}:pending"
	}()
	t0 := time.Now()
	res := call("b") // last of the round: waits, then runs a and b again
	require.NoError(t, res.Err())
	require.Equal(t, "task-1", res.Val())
	require.Less(t, time.Since(t0), time.Second)

	// Without a wake-up the wait ends at the idle bound; halting ends it at once.
	close(halt)
	t0 = time.Now()
	require.ErrorIs(t, call("a").Err(), redis.Nil)
	require.ErrorIs(t, call("b").Err(), redis.Nil)
	require.Less(t, time.Since(t0), 500*time.Millisecond)
}

// BenchmarkHandlerChain measures what the runtime's middleware (recovery,
// logging at info to io.Discard, metrics, default timeout) adds per task on
// top of asynq's mux, the baseline, in the same run:
//
//	go test -run '^$' -bench BenchmarkHandlerChain -benchmem .
//
// BENCH_LOG_LEVEL=warn runs it with the success line filtered out.
func BenchmarkHandlerChain(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Health.Addr = "127.0.0.1:0"
	cfg.Log.Level = "info"
	if l := os.Getenv("BENCH_LOG_LEVEL"); l != "" {
		cfg.Log.Level = l
	}
	r, err := New(cfg, Options{LogOutput: io.Discard, Version: "bench"})
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, r.Stop(context.Background())) })
	noop := func(context.Context, *asynq.Task) error { return nil }
	r.queue.mux.HandleFunc("bench:noop", noop)
	task := asynq.NewTask("bench:noop", nil)
	ctx, cancel := context.WithTimeout(context.Background(), asynqDefaultTimeout)
	defer cancel()
	for _, c := range []struct {
		name string
		h    asynq.Handler
	}{{"asynq-mux", r.queue.mux}, {"taskhost-chain", r.handler()}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.h.ProcessTask(ctx, task); err != nil {
					b.Fatal(err)
				}
			}
		})
		// asynq runs each task on a new goroutine, whose stack grows (is
		// copied) when the chain runs deeper than its first 8 KiB.
		b.Run(c.name+"-new-goroutine", func(b *testing.B) {
			b.ReportAllocs()
			done := make(chan error)
			for b.Loop() {
				go func() { done <- c.h.ProcessTask(ctx, task) }()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// countingPipe counts the scripts sent through it.
type countingPipe struct {
	redis.Cmdable
	mu   sync.Mutex
	shas []string
}

func (p *countingPipe) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	p.mu.Lock()
	p.shas = append(p.shas, sha)
	p.mu.Unlock()
	return p.Cmdable.EvalSha(ctx, sha, keys, args...)
}

func (p *countingPipe) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.shas)
}

// With worker.autopipeline, asynq's scripts other than the dequeue go
// through the autopipeliner; the dequeue, whose wait is per fetcher, does
// not.
func TestFetchClientPipelinesAllButTheDequeue(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	ap, err := rdb.AutoPipeline()
	require.NoError(t, err)
	pipe := &countingPipe{Cmdable: ap}
	f := newFetchClient(rdb, nil, pipe, nil, []string{"default"}, time.Second, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	done := redis.NewScript(`return redis.call("INCR", KEYS[1])`)
	require.NoError(t, done.Load(ctx, rdb).Err())

	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { require.NoError(t, done.Run(ctx, f, []string{"asynq:{default}:processed"}).Err()) })
	}
	wg.Wait()
	n, err := rdb.Get(ctx, "asynq:{default}:processed").Int()
	require.NoError(t, err)
	require.Equal(t, 50, n)

	keys := []string{"asynq:{default}:pending", "asynq:{default}:paused", "asynq:{default}:active", "asynq:{default}:lease"}
	// The dequeue script is not loaded here: NOSCRIPT, sent directly.
	require.ErrorContains(t, f.EvalSha(ctx, dequeueScriptSHA, keys, 0, "asynq:{default}:t:").Err(), "NOSCRIPT")
	pipe.mu.Lock()
	defer pipe.mu.Unlock()
	require.Len(t, pipe.shas, 50)
	for _, sha := range pipe.shas {
		require.Equal(t, done.Hash(), sha)
	}
}

// An extra fetcher's dequeue waits while Redis is not ready, until it is
// ready again or fetching stops.
func TestStandbyWhileDown(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	up := false
	readyCh := make(chan struct{})
	ready := func() bool { mu.Lock(); defer mu.Unlock(); return up }
	await := func(ctx context.Context) bool {
		select {
		case <-readyCh:
			return true
		case <-ctx.Done():
			return false
		}
	}
	standby := standbyWhileDown(ready, await)

	returned := make(chan struct{})
	go func() { standby(nil); close(returned) }()
	select {
	case <-returned:
		t.Fatal("returned while Redis is down")
	case <-time.After(50 * time.Millisecond):
	}
	mu.Lock()
	up = true
	mu.Unlock()
	close(readyCh)
	<-returned
	standby(nil) // ready: at once

	mu.Lock()
	up = false
	mu.Unlock()
	halt := make(chan struct{})
	close(halt)
	standby2 := standbyWhileDown(ready, func(ctx context.Context) bool { <-ctx.Done(); return false })
	t0 := time.Now()
	standby2(halt)
	require.Less(t, time.Since(t0), time.Second, "halt ends the wait")
}
