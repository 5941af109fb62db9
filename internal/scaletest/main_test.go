package scaletest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logRecorder is an asynq.Logger that keeps warnings and errors, so a test
// can assert that no background component (forwarder, janitor, recoverer,
// heartbeater, aggregator, subscriber) failed on the cluster.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) add(level string, args []any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, level+": "+strings.TrimSpace(fmt.Sprint(args...)))
}

func (l *logRecorder) Debug(...any)      {}
func (l *logRecorder) Info(...any)       {}
func (l *logRecorder) Warn(args ...any)  { l.add("WARN", args) }
func (l *logRecorder) Error(args ...any) { l.add("ERROR", args) }
func (l *logRecorder) Fatal(args ...any) { l.add("FATAL", args) }
func (l *logRecorder) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}
func (l *logRecorder) count(s string) (n int) {
	for _, line := range l.Lines() {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// fastConfig is an asynq server config with short intervals, so that
// retries, scheduled tasks, the janitor and aggregation happen within a
// second or two.
func fastConfig(rec *logRecorder, queues ...string) asynq.Config {
	qs := make(map[string]int, len(queues))
	for _, q := range queues {
		qs[q] = 1
	}
	return asynq.Config{
		Concurrency:              4,
		Queues:                   qs,
		TaskCheckInterval:        50 * time.Millisecond,
		DelayedTaskCheckInterval: 100 * time.Millisecond,
		JanitorInterval:          200 * time.Millisecond,
		HealthCheckInterval:      time.Second,
		ShutdownTimeout:          2 * time.Second,
		RetryDelayFunc:           func(int, error, *asynq.Task) time.Duration { return 100 * time.Millisecond },
		Logger:                   rec,
		LogLevel:                 asynq.WarnLevel,
	}
}

// startServer starts an asynq server on c and shuts it down in t.Cleanup.
func startServer(t *testing.T, c redis.UniversalClient, cfg asynq.Config, h asynq.Handler) *asynq.Server {
	t.Helper()
	srv := asynq.NewServerFromRedisClient(c, cfg)
	require.NoError(t, srv.Start(h))
	t.Cleanup(srv.Shutdown)
	return srv
}

// counter counts handler runs per task ID.
type counter struct {
	mu   sync.Mutex
	runs map[string]int
	at   map[string]time.Time
}

func newCounter() *counter { return &counter{runs: map[string]int{}, at: map[string]time.Time{}} }

func (c *counter) add(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs[id]++
	if _, ok := c.at[id]; !ok {
		c.at[id] = time.Now()
	}
}

func (c *counter) get(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[id]
}

func (c *counter) firstAt(id string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.at[id]
	return t, ok
}

func (c *counter) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.runs)
}

func (c *counter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int, len(c.runs))
	for k, v := range c.runs {
		m[k] = v
	}
	return m
}

// countingHandler counts each run of a task by its ID.
func countingHandler(c *counter) asynq.HandlerFunc {
	return func(ctx context.Context, t *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		c.add(id)
		return nil
	}
}
