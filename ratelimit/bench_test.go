package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/ratelimit"
)

// BenchmarkRedisCheck compares one limiter check on Redis with a raw go-redis
// EVALSHA round trip of a trivial script, on the same server and client.
// Target: limiter ≤ 1.2× raw.
func BenchmarkRedisCheck(b *testing.B) {
	srv := redistest.Start(b)
	c := fastClient(b, srv.Addr())
	ctx := context.Background()

	b.Run("raw-evalsha", func(b *testing.B) {
		sha, err := c.ScriptLoad(ctx, "return 1").Result()
		if err != nil {
			b.Fatal(err)
		}
		keys := []string{"bench:raw"}
		b.ReportAllocs()
		for b.Loop() {
			if err := c.EvalSha(ctx, sha, keys).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("limiter-allow", func(b *testing.B) {
		reg, err := ratelimit.New(c, ratelimit.Options{Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		defer reg.Close()
		l, err := reg.Limiter("bench", "1000000000-S")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := l.Allow(ctx, "k"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRedisCheckRatio alternates a raw EVALSHA and a limiter check in
// each iteration, so that load on a shared machine hits both alike, and
// reports their mean times and ratio (limiter/raw). Target: ratio ≤ 1.2.
func BenchmarkRedisCheckRatio(b *testing.B) {
	srv := redistest.Start(b)
	c := fastClient(b, srv.Addr())
	ctx := context.Background()
	sha, err := c.ScriptLoad(ctx, "return 1").Result()
	if err != nil {
		b.Fatal(err)
	}
	reg, err := ratelimit.New(c, ratelimit.Options{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()
	l, err := reg.Limiter("bench", "1000000000-S")
	if err != nil {
		b.Fatal(err)
	}
	keys := []string{"bench:raw"}
	var raw, lim time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := c.EvalSha(ctx, sha, keys).Err(); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := l.Allow(ctx, "k"); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		raw += t1.Sub(t0)
		lim += t2.Sub(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(raw.Nanoseconds())/n, "raw-ns/check")
	b.ReportMetric(float64(lim.Nanoseconds())/n, "limiter-ns/check")
	b.ReportMetric(float64(lim)/float64(raw), "ratio")
}

// BenchmarkDownCheck is a check once the Registry is told Redis is not ready,
// with the server killed: it must answer from memory in well under 1 ms.
// memory-only is the same check on a Registry that never had Redis.
func BenchmarkDownCheck(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, reg *ratelimit.Registry) {
		l, err := reg.Limiter("bench", "1000000000-S")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := l.Allow(ctx, "k"); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("redis-killed-not-ready", func(b *testing.B) {
		srv := redistest.Start(b)
		c := fastClient(b, srv.Addr())
		sw := &redistest.Switch{}
		reg, err := ratelimit.New(c, ratelimit.Options{Logger: quietLogger(), Watch: sw.Watch})
		if err != nil {
			b.Fatal(err)
		}
		defer reg.Close()
		sw.Set(true)
		srv.Kill()
		sw.Set(false)
		run(b, reg)
	})
	b.Run("memory-only", func(b *testing.B) {
		reg, err := ratelimit.New(nil, ratelimit.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer reg.Close()
		run(b, reg)
	})
}
