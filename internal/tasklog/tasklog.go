package tasklog

import (
	"context"
	"log/slog"
	"slices"
	"sync"
)

// Note is the log context of one task run. It is safe for concurrent use:
// a handler may annotate from goroutines it starts.
type Note struct {
	taskType string

	mu    sync.Mutex
	attrs []slog.Attr
}

type noteKey struct{}

// With returns ctx carrying a Note for a task of taskType. When ctx already
// carries one, it is returned unchanged, with its type set if it had none.
func With(ctx context.Context, taskType string) (context.Context, *Note) {
	if n := From(ctx); n != nil {
		n.mu.Lock()
		if n.taskType == "" {
			n.taskType = taskType
		}
		n.mu.Unlock()
		return ctx, n
	}
	n := &Note{taskType: taskType}
	return context.WithValue(ctx, noteKey{}, n), n
}

// From returns the Note of ctx, or nil.
func From(ctx context.Context) *Note {
	n, _ := ctx.Value(noteKey{}).(*Note)
	return n
}

// Type is the task's type.
func (n *Note) Type() string {
	if n == nil {
		return ""
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.taskType
}

// Add adds attributes given as slog's alternating keys and values, or as
// slog.Attr values. A key added again replaces the earlier value.
func (n *Note) Add(args ...any) {
	if n == nil || len(args) == 0 {
		return
	}
	attrs := slog.Group("", args...).Value.Group()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range attrs {
		if i := slices.IndexFunc(n.attrs, func(b slog.Attr) bool { return b.Key == a.Key }); i >= 0 {
			n.attrs[i] = a
			continue
		}
		n.attrs = append(n.attrs, a)
	}
}

// Attrs returns the added attributes, in the order first added.
func (n *Note) Attrs() []slog.Attr {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.attrs)
}
