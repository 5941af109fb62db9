package taskhost

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redisconn"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestOutageLogFolds(t *testing.T) {
	t.Parallel()
	var out syncBuf
	o := newOutageLog()
	log := slog.New(o.handler(slog.NewTextHandler(&out, nil)))
	asynqLog, other := log.With("component", "asynq"), log.With("component", "queue")
	netErr := func() { o.hook().(netHook).note(syscall.ECONNREFUSED) }

	// Connecting: asynq's errors are folded until the first ready.
	asynqLog.Error("Dequeue error: dial tcp: connection refused")
	require.Equal(t, []any{"asynq_errors", 1}, o.annotate(redisconn.Connecting, redisconn.Ready))
	require.Empty(t, out.String())

	// Ready, no network error: lines pass; other components always do.
	asynqLog.Warn("Retry exhausted is not folded here") // the asynq logger demotes that one
	other.Error("queue line")
	log.Warn("scheduled enqueue failed", "component", "scheduler") // component on the record
	lines := strings.Count(out.String(), "\n")
	require.Equal(t, 3, lines, out.String())

	// A line after a network error waits; an outage that follows folds it.
	o.mu.Lock()
	o.endedAt = time.Time{} // long after the first ready
	o.mu.Unlock()
	netErr()
	asynqLog.Error("Failed to write server state data: EOF")
	require.Equal(t, lines, strings.Count(out.String(), "\n"), "held")
	require.Nil(t, o.annotate(redisconn.Ready, redisconn.Reconnecting))
	asynqLog.Error("Dequeue error")
	asynqLog.Error("Dequeue error")
	require.Nil(t, o.annotate(redisconn.Reconnecting, redisconn.Down))
	require.Equal(t, []any{"asynq_errors", 3}, o.annotate(redisconn.Down, redisconn.Ready))
	require.Equal(t, lines, strings.Count(out.String(), "\n"), "nothing logged at INFO")

	// Just after the outage, an echo of it is detail.
	asynqLog.Error("Failed to forward scheduled tasks: EOF")
	require.Equal(t, lines, strings.Count(out.String(), "\n"))

	// A held line that no outage follows is logged as it was, with its time.
	o.mu.Lock()
	o.endedAt = time.Time{}
	o.mu.Unlock()
	netErr()
	asynqLog.Error("a real one")
	require.Eventually(t, func() bool { return strings.Contains(out.String(), `msg="a real one"`) },
		3*holdFor, 10*time.Millisecond)
	require.Contains(t, out.String(), "level=ERROR msg=\"a real one\" component=asynq")

	// Close releases what is held.
	netErr()
	asynqLog.Warn("at close")
	o.annotate(redisconn.Ready, redisconn.Closed)
	require.Contains(t, out.String(), `msg="at close"`)
}

func TestOutageLogDebugKeepsFolded(t *testing.T) {
	t.Parallel()
	var out syncBuf
	o := newOutageLog()
	log := slog.New(o.handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))).With("component", "asynq")
	log.Error("Dequeue error", "n", 1)
	require.Contains(t, out.String(), `level=DEBUG msg="Dequeue error" component=asynq n=1`, "at debug, nothing is lost")
}

func TestAsynqDetailDemoted(t *testing.T) {
	t.Parallel()
	var out syncBuf
	a := asynqLogger{l: slog.New(slog.NewTextHandler(&out, nil))}
	for _, m := range []string{"Starting processing", "Scheduler starting", "Exiting", "Retry exhausted for task id=x",
		"Waiting for all workers to finish...", "Stopping processor"} {
		a.Info(m)
		a.Warn(m)
	}
	require.Empty(t, out.String())
	a.Warn("Quitting worker. task id=x")
	a.Info("Pushed task id=x back to queue")
	require.Equal(t, 2, strings.Count(out.String(), "\n"), out.String())
}
