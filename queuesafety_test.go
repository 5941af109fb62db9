package taskhost_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/plugins"
)

// Queue safety: asynq's leases under load on the application pool, its
// subscriber across an outage, and the worker's CPU while Redis is down.
// Figures and commands are in docs/reliability.md, "Queue safety". The
// long measurements run with TASKHOST_LONG=1.

// longRun reports whether the long measurements were asked for.
func longRun() bool { return os.Getenv("TASKHOST_LONG") == "1" }

// --- a plugin that runs the handlers of the test that configured it ---

const qsPluginID = "qs-func"

var qsHandlers sync.Map // handler key -> asynq.HandlerFunc

type qsPlugin struct{}

type qsPluginConfig struct {
	Handler string   `koanf:"handler"`
	Types   []string `koanf:"types"`
}

func (qsPlugin) PluginInfo() plugins.Info {
	return plugins.Info{ID: qsPluginID, New: func() plugins.Plugin { return qsPlugin{} }}
}

func (qsPlugin) Provision(_ context.Context, h plugins.Host) error {
	var c qsPluginConfig
	if err := h.DecodeConfig(&c); err != nil {
		return err
	}
	fn, ok := qsHandlers.Load(c.Handler)
	if !ok {
		return fmt.Errorf("no handler %q", c.Handler)
	}
	for _, typ := range c.Types {
		h.HandleFunc(typ, fn.(asynq.HandlerFunc))
	}
	return nil
}

func init() { plugins.Register(qsPlugin{}) }

var qsHandlerSeq atomic.Int64

// withHandler makes the runtime built from cfg handle types with fn.
func withHandler(t testing.TB, cfg *taskhost.Config, fn asynq.HandlerFunc, types ...string) {
	t.Helper()
	key := fmt.Sprintf("%s#%d", t.Name(), qsHandlerSeq.Add(1))
	qsHandlers.Store(key, fn)
	t.Cleanup(func() { qsHandlers.Delete(key) })
	ts := make([]any, len(types))
	for i, typ := range types {
		ts[i] = typ
	}
	cfg.Plugins = map[string]map[string]any{qsPluginID: {"handler": key, "types": ts}}
}

// settleDialer waits, after the test's cleanups, for the dial goroutine
// go-redis starts once dials keep failing: it sleeps a second between tries
// and only then sees its pool closed. Call it before startRuntime in tests
// that stop the runtime while Redis is down.
func settleDialer(t testing.TB) {
	t.Cleanup(func() { time.Sleep(1100 * time.Millisecond) })
}

// adminClient is a plain client for the test's own look at Redis, outside
// the runtime's pools.
func adminClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: 2 * time.Second,
		WriteTimeout: time.Second, MaxRetries: -1, PoolSize: 4})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// --- 1. leases under a hammered application pool ---

// leaseLoad is the work of a lease test.
type leaseLoad struct {
	tasks    int           // long tasks
	hold     time.Duration // how long each holds its lease
	blockers int           // hammer goroutines (of 200) that run BLPOP 1s and hold a connection
	quick    int           // no-op tasks enqueued once the hammer runs
	measure  bool          // record a run that does not finish instead of failing
}

// leaseRun is what leaseHammer measured.
type leaseRun struct {
	minMargin   time.Duration // smallest lease score minus now seen on a task
	extensions  map[string]int
	executions  map[string]int
	cancelled   int           // handlers whose context ended early (lease expiry cancels it)
	quickDrain  time.Duration // from enqueueing the quick tasks to the last one done
	ops, errs   int64
	poolTimeout uint32 // pool timeouts on the hammered client
	elapsed     time.Duration
	unfinished  bool // long tasks were still running or waiting at the deadline
}

const (
	holdType  = "qs:hold"
	quickType = "qs:quick"
)

// leaseWorker starts a worker that runs handler for holdType and
// quickType, and returns the client to hammer and a stop function.
type leaseWorker func(t *testing.T, addr string, handler asynq.HandlerFunc) (hammered redis.UniversalClient, stop func())

// leaseHammer runs long tasks that hold their lease while 200 goroutines
// hammer the hammered client with GET/SET/INCR and 10-command pipelines (and
// some with BLPOP, which holds a connection for a second), enqueues quick
// tasks under that load, and samples the lease ZSET from a client of its own.
func leaseHammer(t *testing.T, start leaseWorker, load leaseLoad) leaseRun {
	s := redistest.Start(t)
	admin := adminClient(t, s.Addr())

	var mu sync.Mutex
	run := leaseRun{minMargin: time.Hour, extensions: map[string]int{}, executions: map[string]int{}}
	var held, quick sync.WaitGroup
	held.Add(load.tasks)
	quick.Add(load.quick)
	handler := func(ctx context.Context, task *asynq.Task) error {
		if task.Type() == quickType {
			quick.Done()
			return nil
		}
		id, _ := asynq.GetTaskID(ctx)
		mu.Lock()
		run.executions[id]++
		first := run.executions[id] == 1
		mu.Unlock()
		if first {
			defer held.Done()
		}
		select {
		case <-time.After(load.hold):
			return nil
		case <-ctx.Done():
			mu.Lock()
			run.cancelled++
			mu.Unlock()
			return ctx.Err()
		}
	}
	hammered, stop := start(t, s.Addr(), handler)
	defer stop()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var hammerWG sync.WaitGroup
	var ops, errs atomic.Int64
	for g := range 200 {
		hammerWG.Add(1)
		go func() {
			defer hammerWG.Done()
			key := fmt.Sprintf("qs:hammer:%d", g)
			for i := 0; ctx.Err() == nil; i++ {
				cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
				var err error
				switch mode := i % 4; {
				case g < load.blockers:
					err = hammered.BLPop(cctx, time.Second, key+":never").Err()
					if errors.Is(err, redis.Nil) {
						err = nil
					}
				case mode == 0:
					err = hammered.Set(cctx, key, i, time.Minute).Err()
				case mode == 1:
					err = hammered.Get(cctx, key).Err()
				case mode == 2:
					err = hammered.Incr(cctx, key+":n").Err()
				default:
					_, err = hammered.Pipelined(cctx, func(p redis.Pipeliner) error {
						for j := range 10 {
							p.Incr(cctx, fmt.Sprintf("%s:p%d", key, j))
						}
						return nil
					})
				}
				ccancel()
				ops.Add(1)
				if err != nil && ctx.Err() == nil {
					errs.Add(1)
				}
			}
		}()
	}
	defer hammerWG.Wait()
	defer cancel()

	client := asynq.NewClientFromRedisClient(admin)
	for i := range load.tasks {
		_, err := client.Enqueue(asynq.NewTask(holdType, nil), asynq.TaskID(fmt.Sprintf("hold-%d", i)), asynq.MaxRetry(3))
		require.NoError(t, err)
	}
	began := time.Now()
	time.Sleep(time.Second) // the long tasks start; the hammer is at full load
	quickStart := time.Now()
	for range load.quick {
		_, err := client.Enqueue(asynq.NewTask(quickType, nil))
		require.NoError(t, err)
	}
	go func() { quick.Wait(); mu.Lock(); run.quickDrain = time.Since(quickStart); mu.Unlock() }()

	waitCh := make(chan struct{})
	go func() { held.Wait(); close(waitCh) }()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	last := map[string]float64{}
	deadline := time.After(load.hold + 40*time.Second)
sample:
	for {
		select {
		case <-waitCh:
			break sample
		case <-deadline:
			if !load.measure {
				t.Fatalf("long tasks did not finish within %s", load.hold+40*time.Second)
			}
			run.unfinished = true
			break sample
		case <-tick.C:
		}
		zs, err := admin.ZRangeWithScores(context.Background(), "asynq:{default}:lease", 0, -1).Result()
		if err != nil {
			continue
		}
		now := time.Now()
		for _, z := range zs {
			id := z.Member.(string)
			run.minMargin = min(run.minMargin, time.Unix(int64(z.Score), 0).Sub(now))
			if prev, ok := last[id]; ok && z.Score > prev {
				run.extensions[id]++
			}
			last[id] = z.Score
		}
	}
	run.elapsed = time.Since(began)
	cancel()
	hammerWG.Wait()
	run.ops, run.errs = ops.Load(), errs.Load()
	run.poolTimeout = hammered.PoolStats().Timeouts
	mu.Lock()
	defer mu.Unlock()
	if run.quickDrain == 0 {
		run.quickDrain = -1 // not finished
	}
	return run
}

// runtimeLeaseWorker is the runtime: asynq on its own queue pool, the
// hammer on Redis(), the application pool.
func runtimeLeaseWorker(t *testing.T, addr string, handler asynq.HandlerFunc) (redis.UniversalClient, func()) {
	cfg := testConfig(t, addr)
	cfg.Worker.Concurrency = 8
	withHandler(t, &cfg, handler, holdType, quickType)
	rt := startRuntime(t, cfg)
	waitState(t, rt, 5*time.Second, "ready")
	var mu sync.Mutex
	var changes []string
	unsub := rt.Subscribe(func(from, to taskhost.State) {
		mu.Lock()
		changes = append(changes, to.String())
		mu.Unlock()
	})
	return rt.Redis(), func() {
		unsub()
		mu.Lock()
		defer mu.Unlock()
		t.Logf("monitor states under the hammer: %v", changes)
	}
}

// sharedPoolLeaseWorker is what the runtime would be with one pool: asynq
// on the application client, built from the same config.
func sharedPoolLeaseWorker(t *testing.T, addr string, handler asynq.HandlerFunc) (redis.UniversalClient, func()) {
	cfg := testConfig(t, addr)
	app, err := taskhost.NewRedisClient(cfg.Redis, nil)
	require.NoError(t, err)
	srv := asynq.NewServerFromRedisClient(app, asynq.Config{Concurrency: 8, Logger: quietAsynq{t},
		LogLevel: asynq.FatalLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc(holdType, handler)
	mux.HandleFunc(quickType, handler)
	require.NoError(t, srv.Start(mux))
	return app, func() { srv.Shutdown(); _ = app.Close() }
}

// quietAsynq logs asynq's warnings and errors to the test log.
type quietAsynq struct{ t testing.TB }

func (quietAsynq) Debug(...any)        {}
func (quietAsynq) Info(...any)         {}
func (q quietAsynq) Warn(args ...any)  { q.t.Log(append([]any{"asynq WARN: "}, args...)...) }
func (q quietAsynq) Error(args ...any) { q.t.Log(append([]any{"asynq ERROR: "}, args...)...) }
func (q quietAsynq) Fatal(args ...any) { q.t.Log(append([]any{"asynq FATAL: "}, args...)...) }

// ciLeaseLoad is the CI run: 6 long tasks of 12 s (two lease extensions
// each), 160 goroutines of fast commands and 40 of BLPOP, which keep the
// application pool (20) exhausted, and 300 quick tasks under that load.
var ciLeaseLoad = leaseLoad{tasks: 6, hold: 12 * time.Second, blockers: 40, quick: 300}

// TestLeaseHeldWhileAppPoolIsHammered runs long tasks while 200 goroutines
// hammer the application pool. asynq's heartbeater extends each lease every
// 5 s to now+30 s, so before each extension a lease has about 24-25 s left
// (whole seconds); a missed extension leaves at most about 20 s. The test
// asserts the margin never fell below 21 s, which detects the first missed
// extension, long before the five more a lease needs to expire. The quick
// tasks check that the queue keeps its pace while the application pool is
// exhausted.
func TestLeaseHeldWhileAppPoolIsHammered(t *testing.T) {
	// Not parallel: 200 goroutines load the machine, and timing tests of
	// this package must not run beside them.
	load := ciLeaseLoad
	if longRun() {
		load.hold = 40 * time.Second
	}
	run := leaseHammer(t, runtimeLeaseWorker, load)
	t.Logf("separate queue pool: hold=%s elapsed=%s min lease margin=%s extensions=%v quick drain=%s ops=%d errors=%d app pool timeouts=%d",
		load.hold, run.elapsed.Round(time.Millisecond), run.minMargin.Round(time.Millisecond), run.extensions,
		run.quickDrain.Round(time.Millisecond), run.ops, run.errs, run.poolTimeout)

	require.Len(t, run.executions, load.tasks)
	for id, c := range run.executions {
		require.Equal(t, 1, c, "task %s ran %d times", id, c)
	}
	require.Zero(t, run.cancelled, "a handler's context ended early: a lease expired")
	require.Greater(t, run.minMargin, 21*time.Second, "a lease extension was missed")
	wantExt := int(load.hold/(5*time.Second)) - 1
	for id := range run.executions {
		require.GreaterOrEqual(t, run.extensions[id], wantExt, "lease of %s was extended %d times", id, run.extensions[id])
	}
	require.Positive(t, run.quickDrain, "quick tasks did not finish while the long ones ran")
	require.Less(t, run.quickDrain, 5*time.Second, "the queue slowed down with the application pool")
	require.Positive(t, run.poolTimeout, "the hammer did not exhaust the application pool")
	require.Greater(t, run.ops, int64(1000), "the hammer did not run")
}

// TestLeaseSharedPoolMeasure measures the same load with asynq on the
// application pool (TASKHOST_LONG=1; it records, it does not assert).
func TestLeaseSharedPoolMeasure(t *testing.T) {
	if !longRun() {
		t.Skip("measurement; run with TASKHOST_LONG=1")
	}
	for _, blockers := range []int{0, 40} {
		t.Run(fmt.Sprintf("blockers=%d", blockers), func(t *testing.T) {
			load := ciLeaseLoad
			load.hold, load.blockers, load.measure = 40*time.Second, blockers, true
			run := leaseHammer(t, sharedPoolLeaseWorker, load)
			t.Logf("shared pool: elapsed=%s unfinished=%v min lease margin=%s extensions=%v executions=%v cancelled=%d quick drain=%s ops=%d errors=%d pool timeouts=%d",
				run.elapsed.Round(time.Millisecond), run.unfinished, run.minMargin.Round(time.Millisecond), run.extensions, run.executions,
				run.cancelled, run.quickDrain.Round(time.Millisecond), run.ops, run.errs, run.poolTimeout)
		})
	}
}

// --- 2. the subscriber across an outage that starts before the worker ---

// tcpConns counts established client connections to 127.0.0.1:port.
func tcpConns(t testing.TB, port int) int {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	defer f.Close()
	want := fmt.Sprintf("0100007F:%04X", port)
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 3 && fs[2] == want && fs[3] == "01" {
			n++
		}
	}
	return n
}

// clientList returns the server's clients, other than the caller, as
// name=value maps.
func clientList(t testing.TB, c *redis.Client) []map[string]string {
	t.Helper()
	ctx := context.Background()
	self, err := c.ClientID(ctx).Result()
	require.NoError(t, err)
	raw, err := c.ClientList(ctx).Result()
	require.NoError(t, err)
	var out []map[string]string
	for _, line := range strings.Split(strings.TrimSpace(raw), "\n") {
		m := map[string]string{}
		for _, kv := range strings.Fields(line) {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		if m["id"] != strconv.FormatInt(self, 10) {
			out = append(out, m)
		}
	}
	return out
}

// outageSample is the state of the connections at one moment of an outage.
type outageSample struct {
	at                         time.Duration
	queueConns, appConns       uint32
	pubsubCreated, pubsubAlive uint32
	sockets                    int
}

func (s outageSample) String() string {
	return fmt.Sprintf("t=%s queue_pool=%d app_pool=%d pubsub_created=%d pubsub_open=%d sockets=%d",
		s.at.Round(time.Second), s.queueConns, s.appConns, s.pubsubCreated, s.pubsubAlive, s.sockets)
}

// subscriberOutage starts a worker while Redis is down (killed: refused;
// paused: frozen), keeps it down for outage while sampling the pools and
// sockets, brings Redis back, and checks that the worker subscribes once
// and that asynq's CancelProcessing reaches a running task.
func subscriberOutage(t *testing.T, frozen bool, outage time.Duration) []outageSample {
	s := redistest.Start(t)
	if frozen {
		s.Pause()
	} else {
		s.Kill()
	}
	cancelled := make(chan error, 1)
	started := make(chan string, 1)
	cfg := testConfig(t, s.Addr())
	withHandler(t, &cfg, func(ctx context.Context, _ *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		started <- id
		<-ctx.Done()
		cancelled <- ctx.Err()
		return ctx.Err()
	}, "qs:cancel")
	rt := startRuntime(t, cfg)

	began := time.Now()
	var samples []outageSample
	sample := func() {
		q, a := rt.QueuePoolStats(), rt.Redis().PoolStats()
		samples = append(samples, outageSample{at: time.Since(began), queueConns: q.TotalConns, appConns: a.TotalConns,
			pubsubCreated: q.PubSubStats.Created, pubsubAlive: q.PubSubStats.Active, sockets: tcpConns(t, s.Port())})
	}
	every := max(outage/20, time.Second)
	for time.Since(began) < outage {
		sample()
		time.Sleep(every)
	}
	sample()
	require.NotEqual(t, "ready", rt.State().String())

	if frozen {
		s.Resume()
	} else {
		s.MustRestart(t)
	}
	back := time.Now()
	waitState(t, rt, 5*time.Second, "ready")
	admin := adminClient(t, s.Addr())
	// One subscriber per asynq server: worker.fetchers of them.
	servers := max(1, min(cfg.Worker.Fetchers, cfg.Worker.Concurrency))
	var numsub int64
	require.Eventually(t, func() bool {
		m, err := admin.PubSubNumSub(context.Background(), "asynq:cancel").Result()
		numsub = m["asynq:cancel"]
		return err == nil && numsub == int64(servers)
	}, 10*time.Second, 20*time.Millisecond, "asynq's subscribers did not subscribe after Redis returned: %d of %d", numsub, servers)
	t.Logf("subscribed %s after Redis returned", time.Since(back).Round(time.Millisecond))
	sample()

	// Connections the frozen server accepted from its backlog and found
	// closed go away at once; what remains is open on our side.
	time.Sleep(300 * time.Millisecond)
	clients := clientList(t, admin)
	subs := 0
	for _, c := range clients {
		if c["sub"] != "0" && c["sub"] != "" {
			subs++
		}
	}
	t.Logf("after recovery: %d clients on the server, %d in subscribed mode (asynq's subscribers and any wake-up listener)", len(clients), subs)
	// A leaked subscriber connection, with its SUBSCRIBE waiting in the
	// socket of the frozen server, would have subscribed by now.
	m, err := admin.PubSubNumSub(context.Background(), "asynq:cancel").Result()
	require.NoError(t, err)
	require.Equal(t, int64(servers), m["asynq:cancel"], "one subscription per asynq server")
	poolCap := 2*cfg.Redis.PoolSize + servers + 2 // app and queue pools, subscribers, wake-up listener, test client
	require.LessOrEqual(t, len(clients), poolCap)

	// CancelProcessing reaches the running task through the subscription.
	info, err := asynq.NewClientFromRedisClient(admin).Enqueue(asynq.NewTask("qs:cancel", nil))
	require.NoError(t, err)
	select {
	case id := <-started:
		require.Equal(t, info.ID, id)
	case <-time.After(10 * time.Second):
		t.Fatal("task did not start")
	}
	require.NoError(t, asynq.NewInspectorFromRedisClient(admin).CancelProcessing(info.ID))
	select {
	case err := <-cancelled:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(3 * time.Second):
		t.Fatal("CancelProcessing did not reach the task")
	}
	return samples
}

// checkBoundedOutage asserts the subscriber opened no connection while
// Redis was not ready and that the sockets did not grow with time.
func checkBoundedOutage(t *testing.T, samples []outageSample, poolSize int) {
	t.Helper()
	during := samples[:len(samples)-1]
	for _, s := range during {
		t.Log(s)
		require.Zero(t, s.pubsubCreated, "the subscriber dialed while Redis was not ready: %s", s)
		require.LessOrEqual(t, int(s.queueConns), poolSize, "%s", s)
		require.LessOrEqual(t, s.sockets, 2*poolSize, "%s", s)
	}
	half := len(during) / 2
	peak := func(ss []outageSample) int {
		m := 0
		for _, s := range ss {
			m = max(m, s.sockets)
		}
		return m
	}
	require.LessOrEqual(t, peak(during[half:]), peak(during[:half])+2,
		"sockets grew during the outage: first half peak %d, second half peak %d", peak(during[:half]), peak(during[half:]))
	t.Log("after recovery:", samples[len(samples)-1])
}

// TestSubscriberOutageAtStartFrozen starts the worker while Redis is frozen
// (SIGSTOP) for a short outage, as CI can afford.
func TestSubscriberOutageAtStartFrozen(t *testing.T) {
	t.Parallel()
	outage := 15 * time.Second
	samples := subscriberOutage(t, true, outage)
	checkBoundedOutage(t, samples, taskhost.DefaultConfig().Redis.PoolSize)
}

// TestStopWhileSubscriberWaits stops a worker whose Redis has been down
// since before it started. asynq's subscriber is then waiting in the queue
// client's Subscribe, and asynq's shutdown waits for the subscriber: the
// queue must release it, or Stop hangs until Redis returns.
func TestStopWhileSubscriberWaits(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, redistest.ClosedAddr(t))
	settleDialer(t)
	rt := startRuntime(t, cfg)
	waitState(t, rt, 5*time.Second, "down")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	begin := time.Now()
	require.NoError(t, rt.Stop(ctx))
	t.Logf("stopped in %s", time.Since(begin).Round(time.Millisecond))
	require.Less(t, time.Since(begin), 3*time.Second)
}

// noSubscribe makes Redis answer SUBSCRIBE with NOPERM, as managed Redis
// services and proxies that disable Pub/Sub do (the case of asynq #1095).
func noSubscribe(t *testing.T, admin *redis.Client) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, admin.Do(ctx, "ACL", "SETUSER", "default", "resetchannels").Err())
	ps := admin.Subscribe(ctx, "asynq:cancel")
	defer ps.Close()
	_, err := ps.ReceiveTimeout(ctx, time.Second)
	require.ErrorContains(t, err, "NOPERM")
}

// TestSubscribeRefusedLeaksNothing runs the worker against a Redis that
// refuses SUBSCRIBE. asynq's subscriber retries every 5 s, and v0.26.0
// leaves the connection of each failed attempt open; the queue client
// closes it. The server's client count must not grow.
func TestSubscribeRefusedLeaksNothing(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	admin := adminClient(t, s.Addr())
	noSubscribe(t, admin)
	rt := startRuntime(t, testConfig(t, s.Addr()))
	waitState(t, rt, 5*time.Second, "ready")
	time.Sleep(time.Second)
	first := len(clientList(t, admin))
	time.Sleep(11 * time.Second) // two more attempts of each subscriber
	last := len(clientList(t, admin))
	st := rt.QueuePoolStats().PubSubStats
	t.Logf("clients on the server: %d after 1 s, %d after 12 s; queue pool pubsub: created %d, open %d", first, last, st.Created, st.Active)
	require.Zero(t, st.Active, "a refused subscription's connection was left open")
	require.LessOrEqual(t, last, first+1, "connections grow with each subscribe attempt")
}

// TestSubscriberOutageLong is the 2-minute measurement, refused and frozen
// (TASKHOST_LONG=1).
func TestSubscriberOutageLong(t *testing.T) {
	if !longRun() {
		t.Skip("measurement; run with TASKHOST_LONG=1")
	}
	for _, frozen := range []bool{false, true} {
		name := map[bool]string{false: "refused", true: "frozen"}[frozen]
		t.Run(name, func(t *testing.T) {
			samples := subscriberOutage(t, frozen, 2*time.Minute)
			checkBoundedOutage(t, samples, taskhost.DefaultConfig().Redis.PoolSize)
		})
	}
}

// TestBareSubscribeRefusedMeasure measures asynq v0.26.0 on an unguarded
// client against a Redis that refuses SUBSCRIBE, for 2 minutes
// (TASKHOST_LONG=1; it records, it does not assert).
func TestBareSubscribeRefusedMeasure(t *testing.T) {
	if !longRun() {
		t.Skip("measurement; run with TASKHOST_LONG=1")
	}
	s := redistest.Start(t)
	admin := adminClient(t, s.Addr())
	noSubscribe(t, admin)
	c, err := taskhost.NewRedisClient(testConfig(t, s.Addr()).Redis, nil)
	require.NoError(t, err)
	srv := asynq.NewServerFromRedisClient(c, asynq.Config{Logger: quietAsynq{t}, LogLevel: asynq.FatalLevel})
	require.NoError(t, srv.Start(asynq.NewServeMux()))
	began := time.Now()
	for time.Since(began) < 2*time.Minute {
		time.Sleep(20 * time.Second)
		st := c.PoolStats()
		t.Logf("t=%s pool=%d pubsub_created=%d pubsub_open=%d server_clients=%d", time.Since(began).Round(time.Second),
			st.TotalConns, st.PubSubStats.Created, st.PubSubStats.Active, len(clientList(t, admin)))
	}
	srv.Shutdown()
	_ = c.Close()
}

// TestBareSubscriberOutageMeasure measures asynq v0.26.0's subscriber on an
// unguarded client across an outage that starts before the server
// (TASKHOST_LONG=1; it records, it does not assert).
func TestBareSubscriberOutageMeasure(t *testing.T) {
	if !longRun() {
		t.Skip("measurement; run with TASKHOST_LONG=1")
	}
	for _, frozen := range []bool{false, true} {
		name := map[bool]string{false: "refused", true: "frozen"}[frozen]
		t.Run(name, func(t *testing.T) {
			s := redistest.Start(t)
			if frozen {
				s.Pause()
			} else {
				s.Kill()
			}
			cfg := testConfig(t, s.Addr())
			c, err := taskhost.NewRedisClient(cfg.Redis, nil)
			require.NoError(t, err)
			srv := asynq.NewServerFromRedisClient(c, asynq.Config{Logger: quietAsynq{t}, LogLevel: asynq.FatalLevel})
			require.NoError(t, srv.Start(asynq.NewServeMux()))
			began := time.Now()
			for time.Since(began) < 2*time.Minute {
				time.Sleep(10 * time.Second)
				st := c.PoolStats()
				t.Logf("t=%s pool=%d pubsub_created=%d pubsub_open=%d sockets=%d", time.Since(began).Round(time.Second),
					st.TotalConns, st.PubSubStats.Created, st.PubSubStats.Active, tcpConns(t, s.Port()))
			}
			if frozen {
				s.Resume()
			} else {
				s.MustRestart(t)
			}
			time.Sleep(8 * time.Second)
			admin := adminClient(t, s.Addr())
			clients := clientList(t, admin)
			subs := 0
			for _, cl := range clients {
				if cl["sub"] != "0" {
					subs++
				}
			}
			st := c.PoolStats()
			t.Logf("after recovery: %d clients, %d subscribed; pubsub_created=%d pubsub_open=%d", len(clients), subs,
				st.PubSubStats.Created, st.PubSubStats.Active)
			srv.Shutdown()
			_ = c.Close()
		})
	}
}

// --- 3. CPU while Redis is down ---

// cpuTime is the process's user+system CPU time so far.
func cpuTime(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuShare measures the process's CPU over d, as a share of one core.
func cpuShare(t testing.TB, d time.Duration) float64 {
	t.Helper()
	c0, w0 := cpuTime(t), time.Now()
	time.Sleep(d)
	return float64(cpuTime(t)-c0) / float64(time.Since(w0))
}

// downRedis kills s, or pauses it until the test ends.
func downRedis(t *testing.T, s *redistest.Server, frozen bool) {
	if frozen {
		s.Pause()
		t.Cleanup(s.Resume)
		return
	}
	s.Kill()
}

// TestCPUWhileRedisDown measures the worker's CPU while Redis refuses
// connections and while it is frozen. The target is 5% of one core; the
// assertion allows 20% for a loaded CI machine.
func TestCPUWhileRedisDown(t *testing.T) {
	// Not parallel: getrusage counts the whole test process.
	window := 5 * time.Second
	if longRun() {
		window = 10 * time.Second
	}
	for _, frozen := range []bool{false, true} {
		name := map[bool]string{false: "refused", true: "frozen"}[frozen]
		t.Run(name, func(t *testing.T) {
			s := redistest.Start(t)
			cfg := testConfig(t, s.Addr())
			withHandler(t, &cfg, func(context.Context, *asynq.Task) error { return nil }, "qs:noop")
			settleDialer(t)
			rt := startRuntime(t, cfg)
			waitState(t, rt, 5*time.Second, "ready")
			idle := math.NaN()
			if longRun() {
				idle = cpuShare(t, window)
			}

			downRedis(t, s, frozen)
			waitState(t, rt, 5*time.Second, "down")
			time.Sleep(time.Second) // past the first failures of each loop
			share := cpuShare(t, window)
			t.Logf("CPU over %s: idle with Redis up %.2f%%, Redis %s %.2f%% of one core", window, 100*idle, name, 100*share)
			require.Less(t, share, 0.20, "worker CPU while Redis is %s", name)
		})
	}
}

// TestBareAsynqCPUWhileRedisDownMeasure measures asynq without the queue
// client's guard while Redis refuses connections: bare asynq with its own
// client, and asynq on taskhost's pool settings without the throttle
// (TASKHOST_LONG=1; it records, it does not assert).
func TestBareAsynqCPUWhileRedisDownMeasure(t *testing.T) {
	if !longRun() {
		t.Skip("measurement; run with TASKHOST_LONG=1")
	}
	for _, variant := range []string{"asynq.RedisClientOpt", "taskhost pool, no throttle"} {
		for _, frozen := range []bool{false, true} {
			name := map[bool]string{false: "refused", true: "frozen"}[frozen]
			t.Run(variant+"/"+name, func(t *testing.T) {
				s := redistest.Start(t)
				var srv *asynq.Server
				var closeClient func()
				acfg := asynq.Config{Logger: quietAsynq{t}, LogLevel: asynq.FatalLevel}
				if variant == "asynq.RedisClientOpt" {
					srv = asynq.NewServer(asynq.RedisClientOpt{Addr: s.Addr()}, acfg)
					closeClient = func() {}
				} else {
					c, err := taskhost.NewRedisClient(testConfig(t, s.Addr()).Redis, nil)
					require.NoError(t, err)
					srv = asynq.NewServerFromRedisClient(c, acfg)
					closeClient = func() { _ = c.Close() }
				}
				mux := asynq.NewServeMux()
				mux.HandleFunc("qs:noop", func(context.Context, *asynq.Task) error { return nil })
				require.NoError(t, srv.Start(mux))
				time.Sleep(time.Second)
				downRedis(t, s, frozen)
				time.Sleep(2 * time.Second)
				share := cpuShare(t, 10*time.Second)
				t.Logf("%s, Redis %s: %.1f%% of one core", variant, name, 100*share)
				if frozen {
					s.Resume()
				}
				srv.Shutdown()
				closeClient()
			})
		}
	}
}
