package scaletest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/internal/health"
	"github.com/taskhost/taskhost/internal/redisconn"
	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/ratelimit"
)

// slotMap answers which master serves a key, from CLUSTER SLOTS.
type slotMap struct {
	c     *redis.ClusterClient
	slots []redis.ClusterSlot
}

func newSlotMap(t *testing.T, addrs []string) *slotMap {
	t.Helper()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, MaxRetries: -1,
		DialTimeout: 500 * time.Millisecond, ReadTimeout: time.Second, WriteTimeout: time.Second})
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	slots, err := c.ClusterSlots(ctx).Result()
	require.NoError(t, err)
	require.Len(t, slots, 3)
	return &slotMap{c: c, slots: slots}
}

// masterOf returns the address of the master serving key, checked with
// CLUSTER KEYSLOT on the server.
func (m *slotMap) masterOf(t *testing.T, key string) string {
	t.Helper()
	slot, err := m.c.ClusterKeySlot(context.Background(), key).Result()
	require.NoError(t, err)
	for _, s := range m.slots {
		if int64(s.Start) <= slot && slot <= int64(s.End) {
			return s.Nodes[0].Addr
		}
	}
	t.Fatalf("no master serves slot %d", slot)
	return ""
}

// spread picks n names, make(i) for i = 0, 1, …, whose keys key(name) are
// served by all three masters, filling each master first.
func (m *slotMap) spread(t *testing.T, n int, make func(int) string, key func(string) string) ([]string, map[string]string) {
	t.Helper()
	var picked []string
	owner := map[string]string{}
	seen := map[string]bool{}
	for i := 0; len(picked) < n && i < 1000; i++ {
		name := make(i)
		addr := m.masterOf(t, key(name))
		if len(seen) < 3 && seen[addr] {
			continue
		}
		seen[addr] = true
		picked = append(picked, name)
		owner[name] = addr
	}
	require.Len(t, seen, 3, "names spread over the three masters")
	return picked, owner
}

// TestRuntimeOnCluster runs two taskhost runtimes with redis.mode cluster on
// one Redis Cluster (3 masters, 3 replicas): tasks on 5 queues whose {queue}
// hash tags live on all three masters, the shared cache and a global rate
// limit across nodes, /healthz, and the outbox drained after an outage.
// The subtests run in order on the same runtimes.
func TestRuntimeOnCluster(t *testing.T) {
	t.Parallel()
	// A 5 s node timeout keeps the short outage of the last subtest from
	// starting a failover.
	cl := redistest.StartCluster(t, redistest.ClusterOptions{NodeTimeout: 5 * time.Second})
	sm := newSlotMap(t, cl.Addrs())
	queues, queueMaster := sm.spread(t, 5, func(i int) string { return fmt.Sprintf("s8c%d", i) },
		func(q string) string { return "asynq:{" + q + "}" })

	sink, runs := newSink(t)
	newRuntime := func(withUI bool) *taskhost.Runtime {
		cfg := runtimeConfig(sink, queues...)
		cfg.UI.Enabled = withUI // asynqmon at /ui, loopback, read-only
		cfg.Redis.Mode = taskhost.ModeCluster
		cfg.Redis.Addrs = cl.Addrs()
		cfg.Redis.Host = "" // not used in cluster mode
		cfg.RateLimit.Limits = map[string]string{"x": "100-S"}
		rt, _ := startRuntime(t, cfg)
		return rt
	}
	rtA, rtB := newRuntime(false), newRuntime(true)
	ctx := context.Background()

	t.Run("tasks on five queues over three masters", func(t *testing.T) {
		masters := map[string]bool{}
		for _, q := range queues {
			masters[queueMaster[q]] = true
			// asynq's Inspector agrees with CLUSTER KEYSLOT on where the queue lives.
			insp := asynq.NewInspectorFromRedisClient(rtA.Redis())
			nodes, err := insp.ClusterNodes(q)
			require.NoError(t, err)
			require.Equal(t, queueMaster[q], nodes[0].Addr, "queue %s", q)
			_ = insp.Close()
		}
		require.Len(t, masters, 3)
		const perQueue = 40
		var ids []string
		for i, q := range queues {
			for j := range perQueue {
				id := fmt.Sprintf("s8-%s-%03d", q, j)
				ids = append(ids, id)
				c := rtA.Client()
				if (i+j)%2 == 1 {
					c = rtB.Client()
				}
				res, err := c.Submit(ctx, asynq.NewTask(s8RecordType, nil), asynq.Queue(q), asynq.TaskID(id))
				require.NoError(t, err)
				require.False(t, res.Held)
			}
		}
		require.Eventually(t, func() bool {
			for _, id := range ids {
				if runs.get(id) == 0 {
					return false
				}
			}
			return true
		}, 15*time.Second, 20*time.Millisecond, "every task on every queue is processed")
		time.Sleep(200 * time.Millisecond)
		for _, id := range ids {
			require.Equal(t, 1, runs.get(id), "task %s runs exactly once", id)
		}
	})

	t.Run("cache across nodes", func(t *testing.T) {
		a, b := rtA.Cache().Namespace("s8"), rtB.Cache().Namespace("s8")
		require.Equal(t, cache.BackendRedis, rtA.Cache().Backend())
		keys, _ := sm.spread(t, 9, func(i int) string { return fmt.Sprintf("k%d", i) },
			func(k string) string { return cache.KeyPrefix + "s8:" + k })
		for _, k := range keys {
			require.NoError(t, a.Set(ctx, k, []byte("v-"+k), time.Minute))
		}
		for _, k := range keys {
			v, err := b.Get(ctx, k)
			require.NoError(t, err, "a value written by one runtime is read by the other (key %s)", k)
			require.Equal(t, "v-"+k, string(v))
			// It really is in the cluster, on the master that owns its slot.
			raw, err := sm.c.Get(ctx, cache.KeyPrefix+"s8:"+k).Result()
			require.NoError(t, err)
			require.Equal(t, "v-"+k, raw)
		}
		require.NoError(t, b.Delete(ctx, keys[0]))
		_, err := a.Get(ctx, keys[0])
		require.ErrorIs(t, err, cache.ErrNotFound)
	})

	t.Run("global rate limit across runtimes and nodes", func(t *testing.T) {
		la, err := rtA.Limits().Named("x")
		require.NoError(t, err)
		lb, err := rtB.Limits().Named("x")
		require.NoError(t, err)
		require.Equal(t, ratelimit.BackendRedis, rtA.Limits().Backend())
		// Three limiter keys, one on each master.
		keys, _ := sm.spread(t, 3, func(i int) string { return fmt.Sprintf("s8-%d", i) },
			func(k string) string { return ratelimit.KeyPrefix + "x:" + k })
		errsBefore := rtA.Limits().Stats().RedisErrors + rtB.Limits().Stats().RedisErrors
		for _, key := range keys {
			admitted, byRuntime := hammer(t, key, la, lb)
			t.Logf("limiter x=100-S, key %s on %s: admitted %d in one window (runtime A %d, B %d)",
				key, sm.masterOf(t, ratelimit.KeyPrefix+"x:"+key), admitted, byRuntime[0], byRuntime[1])
			require.InDelta(t, 100, admitted, 10, "two runtimes together admit the global limit, not twice it")
		}
		require.Equal(t, errsBefore, rtA.Limits().Stats().RedisErrors+rtB.Limits().Stats().RedisErrors,
			"every check was counted in Redis, none in memory")
	})

	t.Run("health reports the cluster", func(t *testing.T) {
		var rep health.Report
		var code int
		require.Eventually(t, func() bool {
			code, rep = healthReport(t, rtB)
			return code == 200 && rep.Status == health.StatusOK
		}, 10*time.Second, 100*time.Millisecond, "status %s, reasons %v", rep.Status, rep.Reasons)
		require.Equal(t, taskhost.ModeCluster, rep.Connection.Mode)
		require.Equal(t, "ready", rep.Connection.State)
		require.Nil(t, rep.Connection.CameBackEmptyAt)
		// The empty-restart marker is one key, on the master of its slot.
		n, err := sm.c.Exists(ctx, redisconn.DefaultMarkerKey).Result()
		require.NoError(t, err)
		require.EqualValues(t, 1, n, "the monitor set its marker key in the cluster")
		require.NotNil(t, rep.Redis)
		require.NotNil(t, rep.Redis.RedisInfo)
		c := rep.Redis.Cluster
		require.NotNil(t, c, "the cluster section")
		require.Equal(t, "ok", c.State)
		require.EqualValues(t, 16384, c.SlotsOK)
		require.EqualValues(t, 3, c.Size)
		require.EqualValues(t, 6, c.KnownNodes)
		require.EqualValues(t, 6, c.ReachableNodes)
		listed := map[string]bool{}
		for _, q := range rep.Queues {
			listed[q.Name] = true
		}
		for _, q := range queues {
			require.True(t, listed[q], "queue %s in the report", q)
		}

		// The dashboard (asynqmon) works on the cluster client too.
		for _, path := range []string{"/ui/api/queues", "/ui/api/redis_info"} {
			resp, err := http.Get("http://" + rtB.UIAddr() + path)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, body)
			if path == "/ui/api/queues" {
				for _, q := range queues {
					require.Contains(t, string(body), `"`+q+`"`)
				}
			}
		}
	})

	t.Run("outbox drains into every master after an outage", func(t *testing.T) {
		for _, n := range cl.Nodes() {
			n.Pause()
		}
		resumed := false
		resume := func() {
			if !resumed {
				resumed = true
				for _, n := range cl.Nodes() {
					n.Resume()
				}
			}
		}
		t.Cleanup(resume)
		require.Eventually(t, func() bool { return rtA.State().String() != "ready" }, 5*time.Second, 10*time.Millisecond,
			"the monitor sees the cluster unreachable")
		var ids []string
		for _, q := range queues {
			for j := range 10 {
				id := fmt.Sprintf("s8-held-%s-%02d", q, j)
				ids = append(ids, id)
				res, err := rtA.Client().Submit(ctx, asynq.NewTask(s8RecordType, nil), asynq.Queue(q), asynq.TaskID(id))
				require.NoError(t, err)
				require.True(t, res.Held, "held while the cluster is unreachable")
			}
		}
		resume()
		require.Eventually(t, func() bool {
			if n, _ := rtA.OutboxDepth(); n > 0 {
				return false
			}
			for _, id := range ids {
				if runs.get(id) == 0 {
					return false
				}
			}
			return true
		}, 20*time.Second, 20*time.Millisecond, "the outbox delivers to all five queues and they are processed")
		time.Sleep(200 * time.Millisecond)
		for _, id := range ids {
			require.Equal(t, 1, runs.get(id), "held task %s runs exactly once", id)
		}
		_, rep := healthReport(t, rtA)
		require.Nil(t, rep.Connection.CameBackEmptyAt, "a pause is not an empty restart")
	})
}

// hammer calls two limiters (one per runtime) on key from four goroutines
// for the first 600 ms of the key's window, and returns how many calls were
// admitted, in total and per runtime. Calls stop 150 ms before the window
// ends, so all of them count in that one window.
func hammer(t *testing.T, key string, la, lb *ratelimit.Limiter) (int, [2]int) {
	t.Helper()
	ctx := context.Background()
	first, err := la.Allow(ctx, key)
	require.NoError(t, err)
	require.False(t, first.Reached)
	stopAt := time.Now().Add(600 * time.Millisecond)
	if end := first.Reset.Add(-150 * time.Millisecond); end.Before(stopAt) {
		stopAt = end
	}
	var mu sync.Mutex
	by := [2]int{1, 0}
	var errs []error
	var wg sync.WaitGroup
	for g := range 4 {
		l, idx := la, 0
		if g%2 == 1 {
			l, idx = lb, 1
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stopAt) {
				res, err := l.Allow(ctx, key)
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err)
				case !res.Reached:
					by[idx]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	return by[0] + by[1], by
}
