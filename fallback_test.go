package taskhost_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/ratelimit"
)

// The cache and limiter fallbacks, switched by the runtime's own monitor
// against a real redis-server that is killed or frozen.

// Bounds from the cache and rate-limit issue.
const (
	beforeDetectionBound = 1200 * time.Millisecond // a call before the monitor notices
	afterDownBound       = 50 * time.Millisecond   // a call once it has: memory only
)

type fallbackEnv struct {
	s     *redistest.Server
	rt    *taskhost.Runtime
	admin *redis.Client
	store cache.Store
	lim   *ratelimit.Limiter
}

func setupFallback(t *testing.T) *fallbackEnv {
	t.Helper()
	s := redistest.Start(t)
	rt := startRuntime(t, testConfig(t, s.Addr()))
	waitState(t, rt, 5*time.Second, "ready")
	lim, err := rt.Limits().Limiter("qsfb", "100000-M")
	require.NoError(t, err)
	e := &fallbackEnv{s: s, rt: rt, admin: adminClient(t, s.Addr()), store: rt.Cache().Namespace("qsfb"), lim: lim}
	e.waitBackends(t, "redis")
	return e
}

// waitBackends waits until the cache and the limiter are both on backend.
func (e *fallbackEnv) waitBackends(t *testing.T, backend string) {
	t.Helper()
	require.Eventually(t, func() bool {
		return e.rt.Cache().Backend() == backend && e.rt.Limits().Backend() == backend
	}, 5*time.Second, 5*time.Millisecond, "cache on %s, limiter on %s; want %s",
		e.rt.Cache().Backend(), e.rt.Limits().Backend(), backend)
}

// step is one round of cache and limiter calls; it returns the slowest.
func (e *fallbackEnv) step(t *testing.T, key, value string) time.Duration {
	t.Helper()
	ctx := context.Background()
	var slowest time.Duration
	timed := func(name string, fn func() error) {
		begin := time.Now()
		err := fn()
		d := time.Since(begin)
		require.NoError(t, err, "%s", name)
		slowest = max(slowest, d)
	}
	timed("cache set", func() error { return e.store.Set(ctx, key, []byte(value), time.Minute) })
	timed("cache get", func() error {
		v, err := e.store.Get(ctx, key)
		if err == nil && string(v) != value {
			return fmt.Errorf("got %q, want %q", v, value)
		}
		return err
	})
	timed("limiter allow", func() error {
		res, err := e.lim.Allow(ctx, "k")
		if err == nil && res.Reached {
			return fmt.Errorf("limiter refused at %d of %d", res.Limit-res.Remaining, res.Limit)
		}
		return err
	})
	return slowest
}

func (e *fallbackEnv) redisValue(t *testing.T, key string) (string, error) {
	t.Helper()
	return e.admin.Get(context.Background(), cache.KeyPrefix+"qsfb:"+key).Result()
}

func (e *fallbackEnv) limiterKeys(t *testing.T) []string {
	t.Helper()
	keys, err := e.admin.Keys(context.Background(), ratelimit.KeyPrefix+"qsfb*").Result()
	require.NoError(t, err)
	return keys
}

// fallbackOutage runs cache and limiter calls across an outage: killed
// (refused, then restarted empty) or frozen (SIGSTOP, then resumed intact).
func fallbackOutage(t *testing.T, frozen bool) {
	e := setupFallback(t)
	ctx := context.Background()

	// On Redis.
	e.step(t, "k1", "v1")
	v, err := e.redisValue(t, "k1")
	require.NoError(t, err)
	require.Equal(t, "v1", v)
	require.NotEmpty(t, e.limiterKeys(t), "the limiter counts in Redis")

	// Redis goes away: calls keep succeeding, each within the bound, until
	// the monitor has switched both to memory.
	downAt := time.Now()
	if frozen {
		e.s.Pause()
		t.Cleanup(e.s.Resume)
	} else {
		e.s.Kill()
	}
	var before []time.Duration
	for e.rt.Cache().Backend() != cache.BackendMemory || e.rt.Limits().Backend() != ratelimit.BackendMemory {
		require.Less(t, time.Since(downAt), 10*time.Second, "the fallbacks did not switch to memory")
		before = append(before, e.step(t, "k2", "v2"))
		time.Sleep(time.Millisecond)
	}
	// The monitor may see the outage before the first round (asynq's own
	// traffic nudges it); then there is nothing to bound.
	sort.Slice(before, func(i, j int) bool { return before[i] < before[j] })
	if len(before) > 0 {
		t.Logf("before detection: %d rounds in %s, slowest call %s", len(before),
			time.Since(downAt).Round(time.Millisecond), before[len(before)-1].Round(time.Millisecond))
		require.LessOrEqual(t, before[len(before)-1], beforeDetectionBound)
	}

	// Down: memory only, no dial waits.
	var slowest time.Duration
	for i := range 100 {
		slowest = max(slowest, e.step(t, fmt.Sprintf("m%d", i), "mem"))
	}
	e.step(t, "k1", "stale") // a memory write over a key Redis also has
	t.Logf("after detection: slowest call of 300 %s", slowest)
	require.Less(t, slowest, afterDownBound, "a call waited on Redis while it was down")

	// Back: on Redis again, nothing written to memory is served. (A frozen
	// Redis runs the SET it had in its socket when it stopped: k2 may be
	// there, and then that is what is served.)
	if frozen {
		e.s.Resume()
	} else {
		e.s.MustRestart(t)
	}
	waitState(t, e.rt, 5*time.Second, "ready")
	e.waitBackends(t, "redis")
	for _, k := range []string{"m0", "m99"} {
		_, err := e.store.Get(ctx, k)
		require.ErrorIs(t, err, cache.ErrNotFound, "memory entry %s served after Redis returned", k)
	}
	for _, k := range []string{"k1", "k2"} {
		got, err := e.store.Get(ctx, k)
		inRedis, rerr := e.redisValue(t, k)
		if rerr == redis.Nil {
			require.ErrorIs(t, err, cache.ErrNotFound, "%s is not in Redis; its memory value must not be served", k)
			continue
		}
		require.NoError(t, rerr)
		require.NoError(t, err)
		require.Equal(t, inRedis, string(got), "Redis is authoritative for %s", k)
	}
	if frozen {
		got, err := e.store.Get(ctx, "k1")
		require.NoError(t, err)
		require.Equal(t, "v1", string(got), "the value written to memory during the outage was served")
	} else {
		_, err := e.store.Get(ctx, "k1")
		require.ErrorIs(t, err, cache.ErrNotFound, "Redis came back empty; the memory value must not be served")
	}
	e.step(t, "k3", "v3")
	v, err = e.redisValue(t, "k3")
	require.NoError(t, err)
	require.Equal(t, "v3", v)
	require.NotEmpty(t, e.limiterKeys(t), "the limiter counts in Redis again")
}

func TestFallbackRedisKilled(t *testing.T) {
	t.Parallel()
	fallbackOutage(t, false)
}

func TestFallbackRedisFrozen(t *testing.T) {
	t.Parallel()
	fallbackOutage(t, true)
}

// TestGlobalLimitAcrossTwoRuntimes: two workers on one Redis share a limit
// of 100 per second. Within the first window they admit 100 ± 10 together;
// counted per instance they would admit 200.
func TestGlobalLimitAcrossTwoRuntimes(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	var lims []*ratelimit.Limiter
	for range 2 {
		rt := startRuntime(t, testConfig(t, s.Addr()))
		waitState(t, rt, 5*time.Second, "ready")
		require.Eventually(t, func() bool { return rt.Limits().Backend() == ratelimit.BackendRedis },
			5*time.Second, 5*time.Millisecond)
		l, err := rt.Limits().Limiter("qs-global", "30-S")
		require.NoError(t, err)
		lims = append(lims, l)
	}

	// The window opens at the first check and lasts one second; every
	// caller stops short of its end.
	first, err := lims[0].Allow(context.Background(), "")
	require.NoError(t, err)
	require.False(t, first.Reached)
	stopAt := first.Reset.Add(-50 * time.Millisecond)
	var admitted [2]atomic.Int64
	admitted[0].Add(1)
	var calls atomic.Int64
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := lims[i%2]
			for time.Now().Before(stopAt) {
				res, err := l.Allow(context.Background(), "")
				if err != nil {
					t.Error(err)
					return
				}
				calls.Add(1)
				if !res.Reached {
					admitted[i%2].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	a, b := admitted[0].Load(), admitted[1].Load()
	t.Logf("one window: runtime A admitted %d, runtime B %d, together %d of %d checks", a, b, a+b, calls.Load()+1)
	require.Greater(t, calls.Load(), int64(60), "too few checks to test the limit")
	require.InDelta(t, 30, a+b, 3)
	require.Positive(t, a)
	require.Positive(t, b)
}

// TestTaskRateLimitSpreadsTasks: a task type limited to 5 per second, 50
// enqueued at once. All complete, none archived, none used a retry, and the
// completions spread over about 10 s.
func TestTaskRateLimitSpreadsTasks(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	cfg := testConfig(t, s.Addr())
	cfg.RateLimit.Tasks = map[string]string{"qs:limited": "5-S"}
	const n = 50
	var mu sync.Mutex
	runs := map[string]int{}
	var times []time.Time
	var retried []int
	all := make(chan struct{})
	withHandler(t, &cfg, func(ctx context.Context, _ *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		r, _ := asynq.GetRetryCount(ctx)
		mu.Lock()
		defer mu.Unlock()
		runs[id]++
		times = append(times, time.Now())
		retried = append(retried, r)
		if len(times) == n {
			close(all)
		}
		return nil
	}, "qs:limited")
	rt := startRuntime(t, cfg)
	waitState(t, rt, 5*time.Second, "ready")
	require.Eventually(t, func() bool { return rt.Limits().Backend() == ratelimit.BackendRedis },
		5*time.Second, 5*time.Millisecond)

	for i := range n {
		res, err := rt.Client().Submit(context.Background(), asynq.NewTask("qs:limited", nil),
			asynq.TaskID(fmt.Sprintf("lim-%02d", i)), asynq.MaxRetry(3))
		require.NoError(t, err)
		require.False(t, res.Held)
	}
	select {
	case <-all:
	case <-time.After(40 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%d of %d tasks completed in 40 s", len(times), n)
	}

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, runs, n)
	for id, c := range runs {
		require.Equal(t, 1, c, "task %s ran %d times", id, c)
	}
	for _, r := range retried {
		require.Zero(t, r, "a rate-limited task used up a retry")
	}
	span := times[len(times)-1].Sub(times[0])
	perSecond := map[int64]int{}
	for _, at := range times {
		perSecond[at.Sub(times[0]).Milliseconds()/1000]++
	}
	t.Logf("50 tasks at 5/s: completions spread over %s; per second since the first: %v", span.Round(time.Millisecond), perSecond)
	// Ten windows of 5: 9 s at the limit's pace, plus slack for asynq's
	// one-second forwarder and a loaded CI machine.
	require.GreaterOrEqual(t, span, 8*time.Second)
	require.LessOrEqual(t, span, 14*time.Second, "the task limit admitted well under 5 per second")

	admin := adminClient(t, s.Addr())
	require.Eventually(t, func() bool {
		info, err := asynq.NewInspectorFromRedisClient(admin).GetQueueInfo("default")
		return err == nil && info.Active == 0
	}, 5*time.Second, 20*time.Millisecond)
	info, err := asynq.NewInspectorFromRedisClient(admin).GetQueueInfo("default")
	require.NoError(t, err)
	require.Zero(t, info.Archived, "archived tasks")
	require.Zero(t, info.Retry+info.Pending+info.Scheduled, "tasks left behind")
	require.Zero(t, info.FailedTotal, "rate-limited attempts counted as failures")
}
