package taskhost

import (
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/logswitch"
	"github.com/taskhost/taskhost/internal/testlog"
)

// counted counts how often it is formatted.
type counted struct{ n *atomic.Int32 }

func (c counted) String() string { c.n.Add(1); return "formatted" }

// asynqLogger logs a line only at or above both the handler's level and min,
// and formats nothing it drops; both levels can move while it runs.
func TestAsynqLoggerFollowsTheLevels(t *testing.T) {
	t.Parallel()
	var out testlog.Buffer
	h := logswitch.New(&out, slog.LevelWarn, "text")
	var min slog.LevelVar
	min.Set(slog.LevelWarn)
	a := asynqLogger{l: slog.New(h).With("component", "asynq"), min: &min}
	var n atomic.Int32
	arg := counted{&n}

	a.Debug("All queues are empty ", arg)
	a.Info("Pushed task ", arg)
	a.Info("Starting processing") // asynq detail: DEBUG
	require.Empty(t, out.String())
	require.Zero(t, n.Load(), "nothing dropped is formatted")

	h.Set(slog.LevelDebug, "text") // a reload of log.level: the handler and min
	min.Set(slog.LevelDebug)
	a.Debug("All queues are empty ", arg)
	a.Info("Starting processing")
	require.Contains(t, out.String(), `level=DEBUG msg="All queues are empty formatted" component=asynq`)
	require.Contains(t, out.String(), `level=DEBUG msg="Starting processing" component=asynq`)

	// A program's own logger at DEBUG with log.level info: min keeps
	// asynq's debug lines out, as asynq's level did.
	var own testlog.Buffer
	min.Set(slog.LevelInfo)
	b := asynqLogger{l: slog.New(slog.NewTextHandler(&own, &slog.HandlerOptions{Level: slog.LevelDebug})), min: &min}
	n.Store(0)
	b.Debug("All queues are empty ", arg)
	b.Info("Stopping processor") // detail, demoted below min
	require.Empty(t, own.String())
	require.Zero(t, n.Load())
	b.Info("Pushed task ", arg)
	require.Contains(t, own.String(), `level=INFO msg="Pushed task formatted"`)
}

// BenchmarkAsynqLoggerDropped: what a line that log.level drops costs.
// asynq runs at DebugLevel, so its processor's "All queues are empty" (once
// per empty poll of each fetcher) reaches asynqLogger at INFO.
func BenchmarkAsynqLoggerDropped(b *testing.B) {
	var min slog.LevelVar
	a := asynqLogger{l: slog.New(logswitch.New(io.Discard, slog.LevelInfo, "text")).With("component", "asynq"), min: &min}
	b.Run("debug", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a.Debug("All queues are empty")
		}
	})
	b.Run("info_demoted", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a.Info("Starting processing")
		}
	})
}
