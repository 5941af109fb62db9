package logswitch

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
)

// Formats.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// Handler writes records as text or JSON at a level, both of which Set
// changes for it and for every handler derived from it with WithAttrs and
// WithGroup. The zero value is not usable; make one with New.
type Handler struct {
	root *root
	ops  []op // WithAttrs and WithGroup calls, in order, from the root
	// cache is the inner handler with ops applied, for the root's
	// generation it was built in.
	cache atomic.Pointer[built]
}

type root struct {
	w     io.Writer
	level slog.LevelVar
	cur   atomic.Pointer[inner]
}

type inner struct {
	gen    uint64
	format string
	h      slog.Handler
}

type built struct {
	gen uint64
	h   slog.Handler
}

type op struct {
	group string
	attrs []slog.Attr
}

// New returns a Handler writing to w at level in format ("json", or text
// for anything else).
func New(w io.Writer, level slog.Level, format string) *Handler {
	r := &root{w: w}
	r.level.Set(level)
	r.cur.Store(&inner{gen: 1, format: normal(format), h: r.make(normal(format))})
	return &Handler{root: r}
}

func normal(format string) string {
	if strings.EqualFold(format, FormatJSON) {
		return FormatJSON
	}
	return FormatText
}

func (r *root) make(format string) slog.Handler {
	opts := &slog.HandlerOptions{Level: &r.level}
	if format == FormatJSON {
		return slog.NewJSONHandler(r.w, opts)
	}
	return slog.NewTextHandler(r.w, opts)
}

// Set changes the level and format of h and of every handler that shares
// its root. It is safe to call while others log.
func (h *Handler) Set(level slog.Level, format string) {
	h.root.level.Set(level)
	format = normal(format)
	if cur := h.root.cur.Load(); cur.format != format {
		h.root.cur.Store(&inner{gen: cur.gen + 1, format: format, h: h.root.make(format)})
	}
}

// Level is the current level.
func (h *Handler) Level() slog.Level { return h.root.level.Level() }

// Format is the current format, text or json.
func (h *Handler) Format() string { return h.root.cur.Load().format }

// Enabled reports whether level is at or above the current level.
func (h *Handler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.root.level.Level()
}

// Handle writes r through the current format.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	return h.current().Handle(ctx, r)
}

// current returns the inner handler of the current format with h's
// attributes and groups applied, building it once per format change.
func (h *Handler) current() slog.Handler {
	cur := h.root.cur.Load()
	if b := h.cache.Load(); b != nil && b.gen == cur.gen {
		return b.h
	}
	in := cur.h
	for _, o := range h.ops {
		if o.group != "" {
			in = in.WithGroup(o.group)
		} else {
			in = in.WithAttrs(o.attrs)
		}
	}
	h.cache.Store(&built{gen: cur.gen, h: in})
	return in
}

// WithAttrs returns a handler that adds attrs, in whatever format is current.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return &Handler{root: h.root, ops: append(slices.Clip(h.ops), op{attrs: slices.Clone(attrs)})}
}

// WithGroup returns a handler that nests later attributes under name.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &Handler{root: h.root, ops: append(slices.Clip(h.ops), op{group: name})}
}

var _ slog.Handler = (*Handler)(nil)
