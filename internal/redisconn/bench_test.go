package redisconn_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/redisconn"
	"github.com/taskhost/taskhost/internal/redistest"
)

// BenchmarkHookGET compares a GET through a client without the monitor's hook
// (the baseline) and one with it, against the same redis-server, in one run:
//
//	go test -run '^$' -bench BenchmarkHook -benchmem ./internal/redisconn/
func BenchmarkHookGET(b *testing.B) {
	s := redistest.Start(b)
	cfg := cfgFor(b, s.Addr())
	ctx := context.Background()
	plain := newClient(b, cfg)
	hooked := newClient(b, cfg)
	m := redisconn.NewMonitor(hooked, redisconn.MonitorOptions{Logger: slog.New(slog.DiscardHandler)})
	m.Start()
	b.Cleanup(m.Close)
	ctxWait, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := m.Wait(ctxWait, redisconn.Ready); err != nil {
		b.Fatal(err)
	}
	if err := plain.Set(ctx, "k", "v", 0).Err(); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		c    redis.UniversalClient
	}{{"go-redis", plain}, {"with-hook", hooked}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.c.Get(ctx, "k").Err(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
