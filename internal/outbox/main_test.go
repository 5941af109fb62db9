package outbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskhost/taskhost/internal/outbox"
	"github.com/taskhost/taskhost/internal/redistest"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode)) // a crash-test child: see crash_test.go
	}
	redis.SetLogger(quietRedis{}) // go-redis logs each failed dial; outages are the point here
	goleak.VerifyTestMain(m)
}

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// sharedClient is the process's one Redis client, with the runtime's
// default timeouts: no call blocks for long while Redis is away.
func sharedClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := newShared(addr)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newShared(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  addr,
		DialTimeout:           500 * time.Millisecond,
		ReadTimeout:           500 * time.Millisecond,
		WriteTimeout:          500 * time.Millisecond,
		PoolTimeout:           500 * time.Millisecond,
		MaxRetries:            -1,
		DialerRetries:         1,
		ContextTimeoutEnabled: true,
	})
}

// fixture is one outbox client over a shared client, with a readiness flag
// the test flips in place of the runtime's connection monitor.
type fixture struct {
	t     *testing.T
	rdb   *redis.Client
	ready *atomic.Bool
	c     *outbox.Client
	logs  *logBuffer
}

// setup builds a Client on addr; Redis starts out not ready. The test
// cleanup closes the client and checks that it left the shared client open.
func setup(t *testing.T, addr string, opts outbox.Options) *fixture {
	t.Helper()
	f := &fixture{t: t, rdb: sharedClient(t, addr), ready: new(atomic.Bool), logs: &logBuffer{}}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c, err := outbox.New(asynq.NewClientFromRedisClient(f.rdb), f.ready.Load, opts)
	require.NoError(t, err)
	f.c = c
	t.Cleanup(func() {
		require.NoError(t, c.Close())
		require.NoError(t, c.Close(), "Close is safe to call twice")
		if t.Failed() {
			t.Logf("outbox log:\n%s", f.logs)
		}
	})
	return f
}

// up marks Redis ready, kicks the drain and waits until the outbox is empty.
func (f *fixture) up() {
	f.t.Helper()
	f.ready.Store(true)
	f.c.Kick()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(f.t, f.c.Flush(ctx))
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the log lines that contain s.
func (l *logBuffer) lines(s string) []string {
	var out []string
	for _, ln := range strings.Split(l.String(), "\n") {
		if strings.Contains(ln, s) {
			out = append(out, ln)
		}
	}
	return out
}

// closedPort returns a loopback port nothing listens on, and its address.
func closedPort(t testing.TB) (int, string) {
	t.Helper()
	addr := redistest.ClosedAddr(t)
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	port, err := strconv.Atoi(p)
	require.NoError(t, err)
	return port, addr
}

// startOn starts a redis-server on port, for tests that begin with Redis
// down at a known address.
func startOn(t testing.TB, port int, opts redistest.Options) *redistest.Server {
	t.Helper()
	opts.Port = port
	s, err := redistest.New(opts)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

// payload is the body of test task i; tasks are told apart by it.
func payload(i int) []byte { return []byte(fmt.Sprintf(`{"n":%d}`, i)) }

// inRedis returns every task asynq holds in the given queues, pending,
// scheduled or retry, by payload. A payload seen twice is a duplicate.
func inRedis(t testing.TB, rdb redis.UniversalClient, queues ...string) map[string][]*asynq.TaskInfo {
	t.Helper()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	out := map[string][]*asynq.TaskInfo{}
	list := []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
		insp.ListPendingTasks, insp.ListScheduledTasks, insp.ListRetryTasks,
	}
	for _, q := range queues {
		for _, fn := range list {
			for page := 1; ; page++ {
				infos, err := fn(q, asynq.PageSize(1000), asynq.Page(page))
				if errors.Is(err, asynq.ErrQueueNotFound) {
					break
				}
				require.NoError(t, err)
				for _, in := range infos {
					out[string(in.Payload)] = append(out[string(in.Payload)], in)
				}
				if len(infos) < 1000 {
					break
				}
			}
		}
	}
	return out
}

// requireExactlyOnce checks that tasks 0..n-1 are each in Redis exactly
// once, with distinct IDs, and nothing else is.
func requireExactlyOnce(t testing.TB, got map[string][]*asynq.TaskInfo, n int) {
	t.Helper()
	ids := map[string]bool{}
	var missing, dup int
	for i := 0; i < n; i++ {
		infos := got[string(payload(i))]
		switch {
		case len(infos) == 0:
			missing++
		case len(infos) > 1:
			dup++
		}
		for _, in := range infos {
			require.False(t, ids[in.ID], "task ID %s appears twice", in.ID)
			ids[in.ID] = true
		}
	}
	require.Zero(t, missing, "tasks missing from Redis")
	require.Zero(t, dup, "tasks duplicated in Redis")
	require.Len(t, got, n, "unexpected tasks in Redis")
}

func mustTask(i int) *asynq.Task { return asynq.NewTask("test:t", payload(i)) }
