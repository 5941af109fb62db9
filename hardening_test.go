package taskhost_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/internal/testlog"
	"github.com/taskhost/taskhost/plugins"
)

// TestURLWithPasswordFromEnv: a redis.url without credentials (as the docs
// ask: no secret in the file) and the password in REDIS_PASSWORD.
func TestURLWithPasswordFromEnv(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{Password: "env-pw-15"})
	cfg, err := taskhost.LoadConfig(taskhost.LoadOptions{Environ: []string{
		"REDIS_URL=redis://" + s.Addr() + "/0",
		"REDIS_PASSWORD=env-pw-15",
		"HEALTH_ADDR=127.0.0.1:0",
	}})
	require.NoError(t, err)
	rt := startRuntime(t, cfg)
	waitState(t, rt, 10*time.Second, "ready")
}

// TestAuthFailureInHealth: a wrong password shows in /healthz last_error,
// and is logged once as an authentication problem, not as an outage.
func TestAuthFailureInHealth(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{Password: "right-pw-15"})
	cfg := testConfig(t, s.Addr())
	cfg.Redis.Password = "wrong-pw-15"
	cfg.Log.Level = "info"
	logs := &testlog.Buffer{}
	rt := startRuntime(t, cfg, logs)
	base := "http://" + rt.HealthAddr()
	require.Eventually(t, func() bool {
		_, rep, _ := h5Report(t, base)
		return rep.Connection != nil && rep.Connection.State == "down" &&
			strings.HasPrefix(rep.Connection.LastError, "WRONGPASS")
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, 1, strings.Count(logs.String(), "redis refused authentication"), logs.String())
	require.NotContains(t, logs.String(), "redis down")
	require.NotContains(t, logs.String(), "right-pw-15")
	require.NotContains(t, logs.String(), "wrong-pw-15")
}

// t15Ran records the task IDs the t15 plugin handled.
var t15Ran sync.Map

// t15Plugin handles t15:work.
type t15Plugin struct{}

func (t15Plugin) PluginInfo() plugins.Info {
	return plugins.Info{ID: "t15", New: func() plugins.Plugin { return t15Plugin{} }}
}

func (t15Plugin) Provision(_ context.Context, h plugins.Host) error {
	h.HandleFunc("t15:work", func(ctx context.Context, t *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		t15Ran.Store(id, len(t.Payload()))
		return nil
	})
	return nil
}

func init() { plugins.Register(t15Plugin{}) }

// t15Seed enqueues a t15:work task with a plain asynq client on a client
// with long timeouts (so that a 20 MB task goes in), and returns its ID.
func t15Seed(t *testing.T, addr, queue string, payload []byte) string {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, ReadTimeout: 20 * time.Second, WriteTimeout: 20 * time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	info, err := asynq.NewClientFromRedisClient(rdb).Enqueue(asynq.NewTask("t15:work", payload), asynq.Queue(queue), asynq.MaxRetry(3))
	require.NoError(t, err)
	return info.ID
}

// t15Orphan turns a pending task into one a crashed worker left active:
// in the active list with a lease that expired two minutes ago.
func t15Orphan(t *testing.T, rdb *redis.Client, queue, id string) {
	t.Helper()
	ctx := context.Background()
	p := "asynq:{" + queue + "}:"
	require.NoError(t, rdb.LRem(ctx, p+"pending", 0, id).Err())
	require.NoError(t, rdb.LPush(ctx, p+"active", id).Err())
	require.NoError(t, rdb.ZAdd(ctx, p+"lease", redis.Z{Score: float64(time.Now().Add(-2 * time.Minute).Unix()), Member: id}).Err())
	require.NoError(t, rdb.HSet(ctx, p+"t:"+id, "state", "active").Err())
}

// t15Config is a worker on addr running the t15 plugin on queue.
func t15Config(t *testing.T, addr, queue string) taskhost.Config {
	cfg := testConfig(t, addr)
	cfg.Worker.Queues = map[string]int{queue: 1}
	cfg.Worker.Wakeup = "off"
	cfg.Plugins = map[string]map[string]any{"t15": {}}
	return cfg
}

// TestPoisonNextToOrphan: lease-expired tasks in one queue, next to an
// orphan a crashed worker left: a 20 MB task (the case 1), a hash
// whose msg is garbage and one without msg (case 2). The orphan is
// recovered at the recoverer's first run (at start), the 20 MB task is
// archived with its reason, the other two are quarantined, and /healthz
// and /metrics say so. Before the guard, the recovery failed every minute
// and the orphan never ran.
func TestPoisonNextToOrphan(t *testing.T) {
	t.Parallel()
	const queue = "t15poison"
	s := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), ReadTimeout: 20 * time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	p := "asynq:{" + queue + "}:"

	orphan := t15Seed(t, s.Addr(), queue, []byte(`{"n":1}`))
	big := t15Seed(t, s.Addr(), queue, make([]byte, 20<<20))
	garbage := t15Seed(t, s.Addr(), queue, []byte(`{"n":2}`))
	nomsg := t15Seed(t, s.Addr(), queue, []byte(`{"n":3}`))
	for _, id := range []string{big, garbage, nomsg, orphan} {
		t15Orphan(t, rdb, queue, id)
	}
	require.NoError(t, rdb.HSet(ctx, p+"t:"+garbage, "msg", "garbage").Err())
	require.NoError(t, rdb.HDel(ctx, p+"t:"+nomsg, "msg").Err())

	logs := &testlog.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker log:\n%s", logs.String())
		}
	})
	rt := startRuntime(t, t15Config(t, s.Addr(), queue), logs)
	// asynq's recoverer runs at start and then once a minute; its first run
	// recovers the orphan (about 3 s here): the listing only measures the
	// 20 MB task, whose archive is a call of its own. The bound allows for
	// the second run all the same. Without the guard the listing fails
	// every minute and the orphan never runs.
	require.Eventually(t, func() bool { _, ok := t15Ran.Load(orphan); return ok }, 100*time.Second, 20*time.Millisecond,
		"the orphan is recovered and runs")

	require.ElementsMatch(t, []string{garbage, nomsg}, rdb.ZRange(ctx, "taskhost:quarantine:{"+queue+"}", 0, -1).Val())
	reason := rdb.HGet(ctx, "taskhost:quarantine:{"+queue+"}:"+garbage, "quarantine_reason").Val()
	require.Contains(t, reason, "undecodable")
	require.Contains(t, rdb.HGet(ctx, "taskhost:quarantine:{"+queue+"}:"+nomsg, "quarantine_reason").Val(), "missing")

	info, err := asynq.NewInspectorFromRedisClient(rdb).GetTaskInfo(queue, big)
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStateArchived, info.State)
	require.Contains(t, info.LastErr, "larger than worker.max_payload_bytes allows")
	require.Len(t, info.Payload, 20<<20, "archived, not lost")
	require.Zero(t, rdb.LLen(ctx, p+"active").Val())

	base := "http://" + rt.HealthAddr()
	_, rep, _ := h5Report(t, base)
	require.Contains(t, strings.Join(rep.Warnings, "\n"), "2 poison tasks of queue "+queue+" are in the quarantine")
	fams := h5Scrape(t, base)
	require.Equal(t, 2.0, h5MustValue(t, fams, "taskhost_quarantined_tasks", map[string]string{"queue": queue}))
	require.Equal(t, 1.0, h5MustValue(t, fams, "taskhost_tasks_set_aside_total", map[string]string{"queue": queue, "reason": "oversized"}))
}

// TestPoisonAtDequeue: pending poison (a 20 MB task, garbage, no msg, a
// payload just over the bound) never blocks the good task behind it.
func TestPoisonAtDequeue(t *testing.T) {
	t.Parallel()
	const queue = "t15dequeue"
	s := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), ReadTimeout: 20 * time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	p := "asynq:{" + queue + "}:"

	big := t15Seed(t, s.Addr(), queue, make([]byte, 20<<20))
	over := t15Seed(t, s.Addr(), queue, make([]byte, 8<<10)) // within the msg limit, over the payload bound
	garbage := t15Seed(t, s.Addr(), queue, []byte(`{"n":2}`))
	nomsg := t15Seed(t, s.Addr(), queue, []byte(`{"n":3}`))
	good := t15Seed(t, s.Addr(), queue, []byte(`{"n":4}`))
	require.NoError(t, rdb.HSet(ctx, p+"t:"+garbage, "msg", "garbage").Err())
	require.NoError(t, rdb.HDel(ctx, p+"t:"+nomsg, "msg").Err())

	cfg := t15Config(t, s.Addr(), queue)
	cfg.Worker.MaxPayloadBytes = 4 << 10
	startRuntime(t, cfg)
	require.Eventually(t, func() bool { _, ok := t15Ran.Load(good); return ok }, 20*time.Second, 20*time.Millisecond)
	_, ran := t15Ran.Load(over)
	require.False(t, ran, "the handler never sees a payload over the bound")

	in := asynq.NewInspectorFromRedisClient(rdb)
	for _, id := range []string{big, over} {
		require.Eventually(t, func() bool {
			info, err := in.GetTaskInfo(queue, id)
			return err == nil && info.State == asynq.TaskStateArchived
		}, 10*time.Second, 20*time.Millisecond)
	}
	info, err := in.GetTaskInfo(queue, over)
	require.NoError(t, err)
	require.Contains(t, info.LastErr, "payload too large: task t15:work has a payload of 8192 bytes, more than worker.max_payload_bytes (4096)")
	require.Zero(t, info.Retried, "archived at once")
	require.ElementsMatch(t, []string{garbage, nomsg}, rdb.ZRange(ctx, "taskhost:quarantine:{"+queue+"}", 0, -1).Val())
}

// TestWorkerStartsWithDamagedOutbox: the case 3 as a worker meets
// it: a truncated outbox file used to crash New (SIGBUS or a bbolt
// assertion, exit 2). Now the worker starts, logs the moved file once,
// and delivers the tasks that could be read.
func TestWorkerStartsWithDamagedOutbox(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	path := filepath.Join(t.TempDir(), "outbox.db")

	// Hold 300 tasks in the file while Redis is away.
	down := testConfig(t, redistest.ClosedAddr(t))
	down.Outbox.Path = path
	rt, err := taskhost.New(down, taskhost.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	for i := range 300 {
		r, err := rt.Client().Submit(context.Background(), asynq.NewTask("t15:work", []byte(strings.Repeat("x", 100))),
			asynq.Queue("t15outbox"), asynq.TaskID("ob-"+strconv.Itoa(i)))
		require.NoError(t, err)
		require.True(t, r.Held)
	}
	require.NoError(t, rt.Stop(context.Background()))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(path, st.Size()/2))

	cfg := testConfig(t, s.Addr())
	cfg.Outbox.Path = path
	cfg.Log.Level = "info"
	logs := &testlog.Buffer{}
	rt = startRuntime(t, cfg, logs)
	moved, _ := filepath.Glob(path + ".corrupt-*")
	require.Len(t, moved, 1)
	require.Equal(t, 1, strings.Count(logs.String(), "outbox file is damaged"), logs.String())
	require.Contains(t, logs.String(), "moved_to="+moved[0])
	m := regexp.MustCompile(`recovered=(\d+)`).FindStringSubmatch(logs.String())
	require.NotNil(t, m)
	recovered, _ := strconv.Atoi(m[1])
	require.Positive(t, recovered, "tasks were recovered from the damaged file")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.Eventually(t, func() bool { n, _ := rt.OutboxDepth(); return n == 0 }, 30*time.Second, 10*time.Millisecond,
		"the outbox delivers what it recovered")
	rdb := redistest.Client(t, s.Addr())
	require.Equal(t, int64(recovered), rdb.LLen(ctx, "asynq:{t15outbox}:pending").Val(), "each delivered once")
}

// TestComposePublishesAdminOnLoopback: docker-compose.yml publishes the
// admin listener on the host's loopback only, with minimal health detail,
// and .dockerignore keeps history and secrets out of the build context.
func TestComposePublishesAdminOnLoopback(t *testing.T) {
	t.Parallel()
	body, err := os.ReadFile("docker-compose.yml")
	require.NoError(t, err)
	var compose struct {
		Services map[string]struct {
			Ports       []string          `yaml:"ports"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(body, &compose))
	for name, svc := range compose.Services {
		for _, p := range svc.Ports {
			require.True(t, strings.HasPrefix(p, "127.0.0.1:"), "service %s publishes %q beyond the host's loopback", name, p)
		}
	}
	require.Equal(t, "minimal", compose.Services["worker"].Environment["HEALTH_DETAIL"])

	ignore, err := os.ReadFile(".dockerignore")
	require.NoError(t, err)
	lines := strings.Split(string(ignore), "\n")
	for _, must := range []string{".git", ".env", "*.db"} {
		require.Contains(t, lines, must)
	}
}
