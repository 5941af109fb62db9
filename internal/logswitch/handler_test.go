package logswitch_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/logswitch"
)

func TestSetChangesDerivedLoggers(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := logswitch.New(&buf, slog.LevelInfo, "text")
	root := slog.New(h)
	child := root.With("component", "task").WithGroup("g")

	child.Debug("hidden")
	child.Info("one", "k", 1)
	h.Set(slog.LevelDebug, "json")
	child.Debug("two", "k", 2)
	root.Info("three")
	h.Set(slog.LevelWarn, "text")
	child.Info("hidden too")
	child.Warn("four")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 4, buf.String())
	require.Contains(t, lines[0], `msg=one component=task g.k=1`)
	require.Contains(t, lines[1], `"msg":"two","component":"task","g":{"k":2}`)
	require.Contains(t, lines[2], `"msg":"three"`)
	require.Contains(t, lines[3], `level=WARN msg=four component=task`)
	require.Equal(t, slog.LevelWarn, h.Level())
	require.Equal(t, "text", h.Format())
}

func TestSetWhileLogging(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var buf bytes.Buffer
	h := logswitch.New(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(p) }), slog.LevelInfo, "text")
	log := slog.New(h).With("a", 1)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				log.InfoContext(context.Background(), "x")
			}
		})
	}
	for i := range 100 {
		h.Set(slog.LevelInfo, []string{"text", "json"}[i%2])
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 800, strings.Count(buf.String(), "\n"))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
