package redisconn

import (
	"context"
	"fmt"
	"log/slog"
)

// LibraryLogger adapts l for redis.SetLogger, so go-redis' own messages (one
// per failed dial during an outage) go to slog at DEBUG under component=redis
// instead of to stderr; the Monitor reports outages once, at the right level.
// redis.SetLogger is process-wide: the runtime calls it once.
func LibraryLogger(l *slog.Logger) interface {
	Printf(ctx context.Context, format string, v ...any)
} {
	return libLogger{l.With("component", "redis", "source", "go-redis")}
}

type libLogger struct{ l *slog.Logger }

func (g libLogger) Printf(ctx context.Context, format string, v ...any) {
	if g.l.Enabled(ctx, slog.LevelDebug) {
		g.l.DebugContext(ctx, fmt.Sprintf(format, v...))
	}
}
