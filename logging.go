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
//
// asynq runs at its DebugLevel and leaves the filtering to it: a line is
// dropped, before anything is formatted, unless l logs its level and the
// level is at least min (log.level). A reload of log.level moves both: the
// level of a logger from NewLogger, and min. (asynq's own level is fixed when
// its server is built, and its …f methods format before checking it anyway.)
type asynqLogger struct {
	l *slog.Logger
	// min is the lowest level logged; nil logs whatever l logs. It keeps
	// asynq's debug lines out of a program's own debug logger when
	// log.level is above debug, as asynq's level did before.
	min *slog.LevelVar
}

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

// enabled reports whether a line at level is logged.
func (a asynqLogger) enabled(level slog.Level) bool {
	return (a.min == nil || level >= a.min.Level()) && a.l.Enabled(context.Background(), level)
}

func (a asynqLogger) log(level slog.Level, args ...any) {
	if !a.enabled(level) { // a demoted line would be lower still
		return
	}
	msg := strings.TrimSuffix(fmt.Sprint(args...), "\n")
	if level == slog.LevelError && strings.Contains(msg, sharedCloseNoise) {
		return
	}
	if level <= slog.LevelWarn && level > slog.LevelDebug {
		for _, p := range asynqDetail {
			if strings.HasPrefix(msg, p) {
				if level = slog.LevelDebug; !a.enabled(level) {
					return
				}
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
