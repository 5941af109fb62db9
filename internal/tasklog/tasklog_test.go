package tasklog_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/tasklog"
)

func TestNote(t *testing.T) {
	t.Parallel()
	require.Nil(t, tasklog.From(context.Background()))
	var none *tasklog.Note
	none.Add("a", 1) // no Note: nothing happens
	require.Empty(t, none.Attrs())

	ctx, n := tasklog.With(context.Background(), "")
	ctx2, n2 := tasklog.With(ctx, "mail:send")
	require.Same(t, n, n2, "an existing Note is reused")
	require.Equal(t, ctx, ctx2)
	require.Equal(t, "mail:send", n.Type(), "the type is set when missing")
	_, _ = tasklog.With(ctx, "other")
	require.Equal(t, "mail:send", n.Type(), "and kept once set")

	n.Add("host", "example.com", slog.Int("status", 500))
	n.Add("status", 200)
	require.Equal(t, []slog.Attr{slog.String("host", "example.com"), slog.Int("status", 200)}, tasklog.From(ctx).Attrs())
}
