package taskhost

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost/internal/logswitch"
)

// NewLogger returns the process logger for cfg: text for terminals, JSON for
// production. A runtime given this logger in Options.Logger applies a
// reloaded log.level and log.format to it, and to every logger derived
// from it.
func NewLogger(cfg LogConfig, w io.Writer) *slog.Logger {
	return slog.New(logswitch.New(w, logLevel(cfg), cfg.Format))
}

// logLevel is cfg.Level as a slog level; validation has checked it.
func logLevel(cfg LogConfig) slog.Level {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Level)); err != nil {
		level = slog.LevelInfo
	}
	return level
}

// asynqLogger adapts asynq's Logger interface to slog, under component=asynq.
type asynqLogger struct{ l *slog.Logger }

var _ asynq.Logger = asynqLogger{}

// sharedCloseNoise is what asynq's Scheduler.Shutdown logs, at ERROR, when it
// is built on a shared client that it rightly cannot close.
const sharedCloseNoise = "redis connection is shared"

// asynqDetail are asynq's lines that the runtime logs at DEBUG: each of its
// servers (one per fetcher) and its scheduler report starting and stopping,
// which the runtime reports once for the whole worker ("worker started",
// "worker stopped"); and "Retry exhausted" follows every archived task,
// retried or not, whose own line already says "archived".
var asynqDetail = []string{
	"Starting processing", "Send signal ", "Scheduler starting", "Scheduler timezone is set to",
	"Stopping processor", "Processor stopped", "Starting graceful shutdown",
	"Waiting for all workers to finish", "All workers have finished", "Exiting",
	"Scheduler shutting down", "Scheduler stopped", "Retry exhausted for task",
}

func (a asynqLogger) log(level slog.Level, args ...any) {
	msg := strings.TrimSuffix(fmt.Sprint(args...), "\n")
	if level == slog.LevelError && strings.Contains(msg, sharedCloseNoise) {
		return
	}
	if level <= slog.LevelWarn {
		for _, p := range asynqDetail {
			if strings.HasPrefix(msg, p) {
				level = slog.LevelDebug
				break
			}
		}
	}
	a.l.Log(context.Background(), level, msg)
}

func (a asynqLogger) Debug(args ...any) { a.log(slog.LevelDebug, args...) }
func (a asynqLogger) Info(args ...any)  { a.log(slog.LevelInfo, args...) }
func (a asynqLogger) Warn(args ...any)  { a.log(slog.LevelWarn, args...) }
func (a asynqLogger) Error(args ...any) { a.log(slog.LevelError, args...) }

// Fatal logs at ERROR. asynq calls it for unrecoverable states; the runtime
// reports the failure through Run's error instead of exiting the process here.
func (a asynqLogger) Fatal(args ...any) { a.log(slog.LevelError, args...) }

// asynqLevel maps a slog level name to asynq's level, so asynq does not
// format messages that would be dropped.
func asynqLevel(cfg LogConfig) asynq.LogLevel {
	switch strings.ToLower(cfg.Level) {
	case "debug":
		return asynq.DebugLevel
	case "warn", "warning":
		return asynq.WarnLevel
	case "error":
		return asynq.ErrorLevel
	default:
		return asynq.InfoLevel
	}
}
