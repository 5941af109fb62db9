package redisconn_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskhost/taskhost/internal/redisconn"
	"github.com/taskhost/taskhost/internal/redistest"
)

// TestStartupRedisAbsent: creating the client and monitor with no Redis
// returns at once and ends in down; starting Redis on that port makes it ready.
func TestStartupRedisAbsent(t *testing.T) {
	t.Parallel()
	cfg := cfgFor(t, redistest.ClosedAddr(t))

	start := time.Now()
	f := setup(t, cfg)
	created := time.Since(start)
	require.Less(t, created, 100*time.Millisecond, "creating and starting must not wait for Redis")

	down := waitState(t, f.mon, 3*time.Second, redisconn.Down)

	s, err := redistest.New(redistest.Options{Port: cfg.Port})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	ready := waitState(t, f.mon, 2*time.Second, redisconn.Ready)
	t.Logf("startup without Redis: created in %s, down after %s, ready %s after Redis started", created, down, ready)
}

// TestRestarts: SIGKILL is noticed within 2 s and a restart is ready within
// 2 s, ten times over, with one client and one monitor.
func TestRestarts(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	f := setup(t, cfgFor(t, s.Addr()))
	waitState(t, f.mon, 2*time.Second, redisconn.Ready)

	var worstLost, worstReady time.Duration
	for range 10 {
		s.Kill()
		worstLost = max(worstLost, waitState(t, f.mon, 2*time.Second, redisconn.Reconnecting, redisconn.Down))
		s.MustRestart(t)
		worstReady = max(worstReady, waitState(t, f.mon, 2*time.Second, redisconn.Ready))
	}
	require.NoError(t, f.client.Ping(context.Background()).Err())
	t.Logf("10 restarts: kill noticed within %s, ready within %s of Redis answering again", worstLost, worstReady)
}

// TestLongOutage: after 20 s without Redis the same monitor and client come
// back to ready. The outage is logged once per transition, never repeated,
// without the password, and the empty restart is reported.
func TestLongOutage(t *testing.T) {
	t.Parallel()
	const password = "s3cret-Pa55word"
	s := redistest.Start(t, redistest.Options{Password: password})
	cfg := cfgFor(t, s.Addr())
	cfg.URL = s.URL() // carries the password
	f := setup(t, cfg)
	waitState(t, f.mon, 2*time.Second, redisconn.Ready)

	s.Kill()
	waitState(t, f.mon, 3*time.Second, redisconn.Down)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) { // traffic during the outage must not add log lines
		require.Error(t, f.client.Get(context.Background(), "k").Err())
		require.Equal(t, redisconn.Down, f.mon.State())
		time.Sleep(250 * time.Millisecond)
	}
	s.MustRestart(t)
	back := waitState(t, f.mon, 5*time.Second, redisconn.Ready)
	t.Logf("after a 20 s outage: ready %s after Redis answered again", back)

	logs := f.logs.String()
	require.NotContains(t, logs, password)
	// At INFO: ready at start, one line when the outage starts (down), the
	// empty restart, one line when it ends.
	require.Equal(t, []string{"connecting>ready", "reconnecting>down", "down>ready"},
		f.logs.transitionLines(t))
	recs := f.logs.records(t)
	require.Len(t, recs, 4, "ready, down, the empty restart, ready; nothing repeated:\n%s", logs)
	for _, r := range recs {
		require.Equal(t, "redis", r["component"])
		require.Contains(t, r["target"], "standalone redis://:***@127.0.0.1:")
	}
	require.Equal(t, "ERROR", recs[1]["level"])
	require.Equal(t, "ERROR", recs[2]["level"])
	require.Contains(t, recs[2]["msg"], "redis restarted empty")
	outage, err := time.ParseDuration(recs[3]["outage"].(string))
	require.NoError(t, err)
	require.Greater(t, outage, 20*time.Second, "the ready line tells how long the outage lasted")
}

// TestTransitionLogging: a frozen Redis (SIGSTOP) with traffic for 3 s gives
// exactly one log line per transition, whatever the mix of timeouts, and no
// password (given as host/port/password this time).
func TestTransitionLogging(t *testing.T) {
	t.Parallel()
	const password = "an0ther-s3cret"
	s := redistest.Start(t, redistest.Options{Password: password})
	cfg := cfgFor(t, s.Addr())
	cfg.Password = password
	f := setup(t, cfg)
	waitState(t, f.mon, 2*time.Second, redisconn.Ready)

	s.Pause()
	// Up to 1 s to the next ping, which times out after 0.5 s; down 1 s of
	// failed probes later (each also waits out its 0.5 s timeout).
	waitState(t, f.mon, 5*time.Second, redisconn.Down)
	var wg sync.WaitGroup
	for range 4 { // callers keep dialing (the kernel accepts) and timing out
		wg.Go(func() {
			for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
				_ = f.client.Set(context.Background(), "k", "v", 0).Err()
			}
		})
	}
	wg.Wait()
	require.Equal(t, redisconn.Down, f.mon.State())
	s.Resume()
	waitState(t, f.mon, 3*time.Second, redisconn.Ready)

	require.NotContains(t, f.logs.String(), password)
	require.Equal(t, []string{"connecting>ready", "reconnecting>down", "down>ready"},
		f.logs.transitionLines(t))
	require.Len(t, f.logs.records(t), 3, "ready, down, ready; nothing repeated:\n%s", f.logs.String())
	require.Zero(t, f.mon.EmptyRestarts(), "a pause is not a restart")
}

// TestHookDetectsOnFirstFailedCall: with the periodic ping an hour away, the
// first failed command makes the monitor probe and leave ready within 1 s.
func TestHookDetectsOnFirstFailedCall(t *testing.T) {
	t.Parallel()
	for _, fault := range []string{"kill", "pause"} {
		t.Run(fault, func(t *testing.T) {
			t.Parallel()
			s := redistest.Start(t)
			f := setup(t, cfgFor(t, s.Addr()), func(o *redisconn.MonitorOptions) { o.PingInterval = time.Hour })
			waitState(t, f.mon, 2*time.Second, redisconn.Ready)
			require.NoError(t, f.client.Set(context.Background(), "k", "v", 0).Err())
			if fault == "kill" {
				s.Kill()
			} else {
				s.Pause()
				defer s.Resume()
			}
			require.Error(t, f.client.Get(context.Background(), "k").Err())
			took := waitState(t, f.mon, 2*time.Second, redisconn.Reconnecting, redisconn.Down)
			require.Less(t, took, time.Second)
			t.Logf("%s: not ready %s after the first failed call", fault, took)
		})
	}
}

// TestSubscribers: callbacks see every transition in order, never
// concurrently; Watch starts with the current state and closes after Closed;
// Since, Transitions and the logs agree.
func TestSubscribers(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	f := setup(t, cfgFor(t, s.Addr()))

	var mu sync.Mutex
	var got []string
	var inFlight, overlap atomic.Int32
	f.mon.Subscribe(func(from, to redisconn.State) {
		if inFlight.Add(1) > 1 {
			overlap.Add(1)
		}
		time.Sleep(20 * time.Millisecond) // a slow subscriber delays only itself
		mu.Lock()
		got = append(got, from.String()+">"+to.String())
		mu.Unlock()
		inFlight.Add(-1)
	})
	var once atomic.Int32
	var unsub func()
	unsub = f.mon.Subscribe(func(_, _ redisconn.State) {
		once.Add(1)
		unsub() // unsubscribing from a callback is allowed
	})

	waitState(t, f.mon, 2*time.Second, redisconn.Ready)
	states, cancel := f.mon.Watch()
	defer cancel()
	require.Equal(t, redisconn.Ready, <-states, "a late watcher first gets the current state")
	require.WithinDuration(t, time.Now(), f.mon.Since(), 3*time.Second)

	s.Kill()
	waitState(t, f.mon, 3*time.Second, redisconn.Down)
	f.mon.Close()
	f.mon.Close() // twice is fine

	var last redisconn.State
	for st := range states { // closed after Closed
		last = st
	}
	require.Equal(t, redisconn.Closed, last)
	require.Equal(t, redisconn.Closed, f.mon.State())
	want := []string{"connecting>ready", "ready>reconnecting", "reconnecting>down", "down>closed"}
	mu.Lock()
	require.Equal(t, want, got, "Close waits until subscribers got Closed")
	mu.Unlock()
	require.Zero(t, overlap.Load(), "callbacks of one subscriber never overlap")
	require.Equal(t, int32(1), once.Load())
	require.Equal(t, uint64(4), f.mon.Transitions())
	require.Equal(t, []string{"connecting>ready", "reconnecting>down"}, f.logs.transitionLines(t),
		"at INFO; losing the connection and closing are logged at DEBUG")

	err := f.mon.Wait(context.Background(), redisconn.Ready)
	require.ErrorIs(t, err, redisconn.ErrClosed)
}

// TestMonitorCloseWithoutStart: Close before Start, twice, and Start after
// Close leave a closed monitor and no goroutine.
func TestMonitorCloseWithoutStart(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := cfgFor(t, redistest.ClosedAddr(t))
	c, err := redisconn.NewClient(cfg)
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	m := redisconn.NewMonitor(c, redisconn.MonitorOptions{Logger: slog.New(slog.DiscardHandler)})
	require.Equal(t, redisconn.Connecting, m.State())
	require.False(t, m.Ready())
	m.Close()
	m.Close()
	m.Start()
	require.Equal(t, redisconn.Closed, m.State())
	states, cancel := m.Watch()
	require.Equal(t, redisconn.Closed, <-states)
	_, open := <-states
	require.False(t, open)
	cancel()
	ctx, cancelCtx := context.WithTimeout(context.Background(), time.Second)
	defer cancelCtx()
	require.ErrorIs(t, m.Wait(ctx, redisconn.Ready), redisconn.ErrClosed)
	require.NoError(t, m.Wait(ctx, redisconn.Closed))
}

// TestNoLeakAfterClose: a started monitor with subscribers and watchers
// leaves no goroutine once it and the client are closed.
func TestNoLeakAfterClose(t *testing.T) {
	s := redistest.Start(t) // its process-watching goroutine ends in t.Cleanup
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := cfgFor(t, s.Addr())
	c, err := redisconn.NewClient(cfg)
	require.NoError(t, err)
	m := redisconn.NewMonitor(c, redisconn.MonitorOptionsFrom(cfg, slog.New(slog.DiscardHandler)))
	m.Subscribe(func(_, _ redisconn.State) {})
	_, cancel := m.Watch()
	defer cancel()
	m.Start()
	waitState(t, m, 2*time.Second, redisconn.Ready)
	m.Close()
	require.NoError(t, c.Ping(context.Background()).Err(), "the monitor never closes the client")
	require.NoError(t, c.Close())
}

// TestWaitRespectsContext: Wait gives up with the context and says why.
func TestWaitRespectsContext(t *testing.T) {
	t.Parallel()
	f := setup(t, cfgFor(t, redistest.ClosedAddr(t)))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := f.mon.Wait(ctx, redisconn.Ready)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.True(t, strings.Contains(err.Error(), "ready"), err.Error())
}
