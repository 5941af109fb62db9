package plugins

import (
	"context"

	"github.com/taskhost/taskhost/internal/tasklog"
)

// AnnotateTask adds attributes to the line the worker logs when the task
// that ctx belongs to ends ("task done", "task failed"), given as slog's
// alternating keys and values or as slog.Attr values:
//
//	plugins.AnnotateTask(ctx, "host", u.Host, "status", resp.StatusCode)
//
// A key added again replaces the earlier value. Outside a task it does
// nothing. Never add a secret.
func AnnotateTask(ctx context.Context, args ...any) {
	tasklog.From(ctx).Add(args...)
}
