package cache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/internal/redistest"
)

// errRecorder collects what the fallback reports through OnRedisError.
type errRecorder struct {
	mu   sync.Mutex
	errs []error
}

func (r *errRecorder) record(err error) { r.mu.Lock(); r.errs = append(r.errs, err); r.mu.Unlock() }

func (r *errRecorder) all() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

type fallbackEnv struct {
	srv  *redistest.Server
	rc   *redis.Client // the client the cache uses
	raw  *redis.Client // a separate client to check Redis directly
	hook *countingHook // counts what the cache's client sends
	f    *cache.Cache
	sw   *redistest.Switch // the state, as the runtime's monitor would tell it
	errs *errRecorder
	logs *bytes.Buffer
}

func setupFallback(t *testing.T) *fallbackEnv {
	t.Helper()
	e := &fallbackEnv{srv: redistest.Start(t), hook: &countingHook{}, sw: &redistest.Switch{}, errs: &errRecorder{}, logs: &bytes.Buffer{}}
	e.rc = newClient(t, e.srv.Addr())
	e.rc.AddHook(e.hook)
	e.raw = newClient(t, e.srv.Addr())
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.f = cache.New(e.rc, cache.Options{Logger: logger, OnRedisError: e.errs.record, MaxValueBytes: 1 << 10, Watch: e.sw.Watch})
	t.Cleanup(e.f.Close)
	return e
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// timed runs fn and fails the test if it took longer than limit.
func timed(t *testing.T, limit time.Duration, what string, fn func() error) {
	t.Helper()
	start := time.Now()
	err := fn()
	took := time.Since(start)
	if took > 10*time.Millisecond {
		t.Logf("%s took %s", what, took)
	}
	require.NoError(t, err, what)
	require.LessOrEqual(t, took, limit, "%s took %s", what, took)
}

func getString(ctx context.Context, s cache.Store, key string) (string, error) {
	v, err := s.Get(ctx, key)
	return string(v), err
}

func TestFallbackStartsOnMemory(t *testing.T) {
	t.Parallel()
	e := setupFallback(t)
	ctx := ctxT(t)
	require.Equal(t, cache.BackendMemory, e.f.Backend())
	require.Zero(t, e.f.Switches())

	s := e.f.Namespace("boot")
	require.NoError(t, s.Set(ctx, "k", []byte("v"), 0))
	got, err := getString(ctx, s, "k")
	require.NoError(t, err)
	require.Equal(t, "v", got)
	require.Zero(t, e.hook.dials.Load()+e.hook.cmds.Load(), "not ready: Redis is never touched")
	require.Empty(t, e.errs.all())
}

func TestFallbackSwitchDropsMemory(t *testing.T) {
	t.Parallel()
	e := setupFallback(t)
	ctx := ctxT(t)
	s := e.f.Namespace("sw")

	require.NoError(t, s.Set(ctx, "k", []byte("memory"), 0))
	e.sw.Set(true)
	require.Equal(t, cache.BackendRedis, e.f.Backend())
	_, err := s.Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrNotFound, "on Redis: the memory entry is not served")

	require.NoError(t, s.Set(ctx, "k", []byte("redis"), 0))
	raw, err := e.raw.Get(ctx, rawKey("sw", "k")).Result()
	require.NoError(t, err)
	require.Equal(t, "redis", raw)

	e.sw.Set(true) // no change: not counted, not logged
	e.sw.Set(false)
	_, err = s.Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrNotFound, "memory was dropped when switching to Redis")
	require.EqualValues(t, 2, e.f.Switches())
	require.Equal(t, cache.BackendMemory, e.f.Backend())

	logs := e.logs.String()
	require.Equal(t, 2, bytes.Count([]byte(logs), []byte("component=cache")), "one log line per switch:\n%s", logs)
	require.Contains(t, logs, "dropped=1")
}

// TestFallbackRedisKilled kills Redis while the cache is still marked ready.
func TestFallbackRedisKilled(t *testing.T) {
	t.Parallel()
	testOutage(t, func(s *redistest.Server) { s.Kill() }, func(t *testing.T, s *redistest.Server) { s.MustRestart(t) }, true)
}

// TestFallbackRedisPaused freezes Redis with SIGSTOP: connections hang
// instead of being refused.
func TestFallbackRedisPaused(t *testing.T) {
	t.Parallel()
	testOutage(t, func(s *redistest.Server) { s.Pause() }, func(_ *testing.T, s *redistest.Server) { s.Resume() }, false)
}

func testOutage(t *testing.T, stop func(*redistest.Server), start func(*testing.T, *redistest.Server), emptyAfter bool) {
	e := setupFallback(t)
	ctx := ctxT(t)
	s := e.f.Namespace("jobs")
	e.sw.Set(true)

	require.NoError(t, s.Set(ctx, "before", []byte("on-redis"), 0))
	raw, err := e.raw.Get(ctx, rawKey("jobs", "before")).Result()
	require.NoError(t, err)
	require.Equal(t, "on-redis", raw)

	stop(e.srv)

	// Still marked ready: each call fails on Redis, and is served from memory
	// within the client's timeouts.
	for i := range 2 {
		key := fmt.Sprintf("during-%d", i)
		timed(t, 1200*time.Millisecond, "Set "+key, func() error { return s.Set(ctx, key, []byte("mem"), 0) })
		timed(t, 1200*time.Millisecond, "Get "+key, func() error {
			got, err := getString(ctx, s, key)
			if err == nil && got != "mem" {
				err = fmt.Errorf("got %q", got)
			}
			return err
		})
	}
	errs := e.errs.all()
	require.NotEmpty(t, errs, "Redis errors are reported")
	for _, err := range errs {
		require.Error(t, err, "a connection error is reported")
	}
	require.Equal(t, cache.BackendRedis, e.f.Backend(), "errors do not switch the state")
	require.EqualValues(t, 1, e.f.Switches())
	require.EqualValues(t, len(errs), e.f.Stats().RedisErrors)

	// The monitor notices: memory only, no dial waits, Redis untouched.
	e.sw.Set(false)
	dials, cmds := e.hook.dials.Load(), e.hook.cmds.Load()
	got, err := getString(ctx, s, "during-0")
	require.NoError(t, err)
	require.Equal(t, "mem", got, "what was written during the outage is kept while it lasts")
	for i := range 20 {
		key := fmt.Sprintf("down-%d", i)
		timed(t, 50*time.Millisecond, "Set "+key, func() error { return s.Set(ctx, key, []byte("x"), 0) })
		timed(t, 50*time.Millisecond, "Get "+key, func() error { _, err := s.Get(ctx, key); return err })
	}
	timed(t, 50*time.Millisecond, "Set stale", func() error { return s.Set(ctx, "stale", []byte("from-memory"), 0) })
	require.Equal(t, dials, e.hook.dials.Load(), "no dial while not ready")
	require.Equal(t, cmds, e.hook.cmds.Load(), "no command while not ready")

	// Redis is back, with its own value for "stale".
	start(t, e.srv)
	require.Eventually(t, func() bool { return e.raw.Ping(ctx).Err() == nil }, 5*time.Second, 20*time.Millisecond)
	require.NoError(t, e.raw.Set(ctx, rawKey("jobs", "stale"), "from-redis", 0).Err())
	e.sw.Set(true)
	require.EqualValues(t, 3, e.f.Switches())

	got, err = getString(ctx, s, "stale")
	require.NoError(t, err)
	require.Equal(t, "from-redis", got, "the memory value from the outage is not served")
	_, err = s.Get(ctx, "down-0")
	require.ErrorIs(t, err, cache.ErrNotFound, "memory entries were dropped")
	if emptyAfter {
		_, err = s.Get(ctx, "during-0")
		require.ErrorIs(t, err, cache.ErrNotFound)
	} else {
		got, err = getString(ctx, s, "before")
		require.NoError(t, err)
		require.Equal(t, "on-redis", got, "a paused Redis keeps its data")
	}
	require.NoError(t, s.Set(ctx, "after", []byte("back"), 0))
	raw, err = e.raw.Get(ctx, rawKey("jobs", "after")).Result()
	require.NoError(t, err)
	require.Equal(t, "back", raw, "calls are on Redis again")
}

// TestFallbackRedisRecoversBeforeMonitor: when Redis answers again before the
// monitor noticed anything, what the failed calls wrote to memory is dropped
// so a later outage cannot serve it.
func TestFallbackRedisRecoversBeforeMonitor(t *testing.T) {
	t.Parallel()
	e := setupFallback(t)
	ctx := ctxT(t)
	s := e.f.Namespace("blip")
	e.sw.Set(true)
	require.NoError(t, s.Set(ctx, "warm", []byte("w"), 0))

	e.srv.Kill()
	require.NoError(t, s.Set(ctx, "k", []byte("old"), 0)) // served from memory
	e.srv.MustRestart(t)
	require.Eventually(t, func() bool { return e.raw.Ping(ctx).Err() == nil }, 5*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return s.Set(ctx, "k", []byte("new"), 0) == nil }, 5*time.Second, 20*time.Millisecond)
	n := len(e.errs.all())

	e.sw.Set(false) // a later outage
	_, err := s.Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrNotFound, "the value from the blip is not served")
	require.GreaterOrEqual(t, n, 1)
}

// TestFallbackKeepsRedisAnswers: an error that Redis answered with is the
// caller's, not a reason to use memory.
func TestFallbackKeepsRedisAnswers(t *testing.T) {
	t.Parallel()
	e := setupFallback(t)
	ctx := ctxT(t)
	s := e.f.Namespace("wt")
	e.sw.Set(true)
	require.NoError(t, e.raw.LPush(ctx, rawKey("wt", "list"), "x").Err())
	_, err := s.Get(ctx, "list")
	require.Error(t, err)
	require.Contains(t, err.Error(), "WRONGTYPE")
	require.Empty(t, e.errs.all())

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Get(cctx, "list")
	require.ErrorIs(t, err, context.Canceled, "a cancelled caller gets its own error")
	require.Empty(t, e.errs.all())
}

// TestSwitchUnderTraffic switches back and forth while goroutines use
// the cache; run with -race.
func TestSwitchUnderTraffic(t *testing.T) {
	t.Parallel()
	e := setupFallback(t)
	ctx := ctxT(t)
	var stop atomic.Bool
	var ops atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			s := e.f.Namespace(fmt.Sprintf("w%d", w))
			for i := 0; !stop.Load(); i++ {
				key := fmt.Sprintf("k%d", i%8)
				var err error
				switch i % 4 {
				case 0:
					err = s.Set(ctx, key, []byte("v"), time.Minute)
				case 1:
					_, err = s.Get(ctx, key)
				case 2:
					_, err = s.GetOrLoad(ctx, key, time.Minute, func(context.Context) ([]byte, error) { return []byte("l"), nil })
				case 3:
					err = s.Delete(ctx, key)
				}
				if err != nil && !errors.Is(err, cache.ErrNotFound) {
					errs <- err
					return
				}
				ops.Add(1)
			}
		})
	}
	for i := range 200 {
		e.sw.Set(i%2 == 0)
		_ = e.f.Backend()
		_ = e.f.Stats()
		for ops.Load() < int64(4*i) && len(errs) == 0 {
			runtime.Gosched() // let traffic run between switches
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, 200, e.f.Switches())
	require.Empty(t, e.errs.all(), "Redis was up the whole time")
}

func TestWatch(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rc := newClient(t, srv.Addr())

	unwatched := cache.New(rc, cache.Options{Logger: quiet})
	require.Equal(t, cache.BackendRedis, unwatched.Backend(), "without Watch, Redis is ready from the start")
	require.Zero(t, unwatched.Switches())
	unwatched.Close()

	sw := &redistest.Switch{}
	watched := cache.New(rc, cache.Options{Logger: quiet, Watch: sw.Watch})
	require.Equal(t, cache.BackendMemory, watched.Backend(), "with Watch, memory until told ready")
	sw.Set(true)
	require.Equal(t, cache.BackendRedis, watched.Backend())
	watched.Close()
	require.True(t, sw.Stopped(), "Close ends the watch")
}
