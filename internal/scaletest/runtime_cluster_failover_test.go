package scaletest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/redisconn"
	"github.com/taskhost/taskhost/internal/redistest"
)

// TestRuntimeClusterMasterFailover runs a runtime with redis.mode cluster
// on a stream of tasks over 5 queues spread on the 3 masters, SIGKILLs the
// master that holds the monitor's marker key, and checks that once its
// replica takes over (after cluster-node-timeout, 2 s here) the runtime,
// never restarted, is ready again and every queue processes within 10 s,
// and that every task the outbox held is processed. It reports the
// monitor's transitions and when each queue resumed. (go-redis' cluster
// client kept dialing the dead master for 60 s before redisconn set
// ClusterStateReloadInterval.) The scale variant also kills another master.
func TestRuntimeClusterMasterFailover(t *testing.T) {
	t.Parallel()
	runClusterMasterFailover(t, true)
}

func runClusterMasterFailover(t *testing.T, markerMaster bool) {
	cl := redistest.StartCluster(t)
	sm := newSlotMap(t, cl.Addrs())
	queues, queueMaster := sm.spread(t, 5, func(i int) string { return fmt.Sprintf("s8f%d", i) },
		func(q string) string { return "asynq:{" + q + "}" })
	sink, runs := newSink(t)
	cfg := runtimeConfig(sink, queues...)
	cfg.Redis.Mode = taskhost.ModeCluster
	cfg.Redis.Addrs = cl.Addrs()
	rt, _ := startRuntime(t, cfg)

	marker := sm.masterOf(t, redisconn.DefaultMarkerKey)
	victim := ""
	for _, q := range queues {
		if (queueMaster[q] == marker) == markerMaster {
			victim = queueMaster[q]
			break
		}
	}
	t.Logf("killing master %s; the marker key is on %s", victim, marker)

	var tmu sync.Mutex
	var transitions []string
	t0 := time.Now()
	unsub := rt.Subscribe(func(from, to taskhost.State) {
		tmu.Lock()
		transitions = append(transitions, fmt.Sprintf("%v %s->%s", time.Since(t0).Round(time.Millisecond), from, to))
		tmu.Unlock()
	})
	defer unsub()

	ctx := context.Background()
	st := &outboxStream{subs: map[string]submission{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, q := range queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.run(ctx, rt.Client(), fmt.Sprintf("s8-%d-", i), q, 10*time.Millisecond, stop)
		}()
	}
	stopStream := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopStream)
	time.Sleep(time.Second)

	var killed bool
	for _, n := range cl.Nodes() {
		if n.Addr() == victim {
			killedAt := time.Now()
			n.Kill()
			killed = true
			t.Logf("killed at +%v", killedAt.Sub(t0).Round(time.Millisecond))
		}
	}
	require.True(t, killed)
	// Wait until a replica serves the victim's slots again.
	var promotedAt time.Time
	require.Eventually(t, func() bool {
		slots, err := sm.c.ClusterSlots(ctx).Result()
		if err != nil {
			return false
		}
		for _, s := range slots {
			if s.Nodes[0].Addr == victim {
				return false
			}
		}
		promotedAt = time.Now()
		return len(slots) == 3
	}, 30*time.Second, 50*time.Millisecond)
	t.Logf("replica promoted at +%v", promotedAt.Sub(t0).Round(time.Millisecond))
	// The killed master's queues pick up only after the promotion.
	time.Sleep(2 * time.Second)
	stopStream()

	subs, errs := st.snapshot()
	drained := waitFor(30*time.Second, func() bool {
		if n, _ := rt.OutboxDepth(); n > 0 {
			return false
		}
		for id, s := range subs {
			if s.held && runs.get(id) == 0 {
				return false
			}
		}
		return true
	})
	require.True(t, drained, "the outbox drains and every held task is processed")
	require.Empty(t, errs, "Submit never fails: the outbox holds what the cluster cannot take")
	time.Sleep(500 * time.Millisecond)
	processed := runs.snapshot()
	var held, lost, dup int
	for id, s := range subs {
		if s.held {
			held++
		}
		switch n := processed[id]; {
		case n == 0:
			lost++
		case n > 1:
			dup++
		}
	}
	insp := asynq.NewInspectorFromRedisClient(rt.Redis())
	defer insp.Close()
	active := 0
	for _, q := range queues {
		a, err := insp.ListActiveTasks(q)
		if err == nil {
			active += len(a)
		}
	}
	tmu.Lock()
	t.Logf("monitor transitions: %v", transitions)
	tmu.Unlock()
	t.Logf("submitted=%d held=%d submit-errors=%d not-processed=%d (still active: %d) duplicated=%d; first errors: %v",
		len(subs), held, len(errs), lost, active, dup, errs[:min(len(errs), 3)])
	for i, q := range queues {
		prefix := fmt.Sprintf("s8-%d-", i)
		var first time.Time
		for id := range processed {
			if !strings.HasPrefix(id, prefix) {
				continue
			}
			at, _ := runs.firstAt(id)
			if at.After(promotedAt) && (first.IsZero() || at.Before(first)) {
				first = at
			}
		}
		require.False(t, first.IsZero(), "queue %s processes after the promotion", q)
		require.Less(t, first.Sub(promotedAt), 10*time.Second, "queue %s resumes within 10 s of the promotion", q)
		t.Logf("queue %s on %s (killed: %v): first task after the promotion +%v later", q, queueMaster[q], queueMaster[q] == victim,
			first.Sub(promotedAt).Round(time.Millisecond))
	}
	require.Equal(t, taskhost.StateReady, rt.State())
}

// waitFor polls cond every 50 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}
