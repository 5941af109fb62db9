package cache_test

import (
	"bytes"
	"context"
	"errors"
	"math/bits"
	"testing"
	"time"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/internal/redistest"
)

var (
	benchValue = bytes.Repeat([]byte("v"), 64)
	benchSink  []byte
)

// BenchmarkGet compares the cache's Get on each backend with a raw go-redis
// GET of the same key on the same server and client.
func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	srv := redistest.Start(b)
	rc := newClient(b, srv.Addr())
	rs := cache.NewRedis(rc, cache.Options{}).Namespace("bench")
	f := cache.New(rc, cache.Options{Logger: quiet})
	b.Cleanup(f.Close)
	fs := f.Namespace("bench")
	m := cache.NewMemory(cache.Options{})
	b.Cleanup(m.Close)
	ms := m.Namespace("bench")
	if err := rs.Set(ctx, "k", benchValue, 0); err != nil {
		b.Fatal(err)
	}
	if err := ms.Set(ctx, "k", benchValue, 0); err != nil {
		b.Fatal(err)
	}
	key := rawKey("bench", "k")

	b.Run("redis-raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := rc.Get(ctx, key).Bytes(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("redis-cache", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := rs.Get(ctx, "k"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fallback-ready", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := fs.Get(ctx, "k"); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Interleaved, so that drift in the shared machine's load hits both alike:
	// each iteration times one raw GET and one cache Get.
	b.Run("redis-interleaved", func(b *testing.B) {
		var raw, cached time.Duration
		for b.Loop() {
			t0 := time.Now()
			if _, err := rc.Get(ctx, key).Bytes(); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			if _, err := rs.Get(ctx, "k"); err != nil {
				b.Fatal(err)
			}
			raw, cached = raw+t1.Sub(t0), cached+time.Since(t1)
		}
		b.ReportMetric(float64(raw.Nanoseconds())/float64(b.N), "raw-ns/get")
		b.ReportMetric(float64(cached.Nanoseconds())/float64(b.N), "cache-ns/get")
		b.ReportMetric(float64(cached)/float64(raw), "cache/raw")
	})
	b.Run("memory", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ms.Get(ctx, "k"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("memory-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := ms.Get(ctx, "k"); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkFallbackDown: Redis is killed and the cache marked not ready;
// every call must answer from memory, well under 1 ms, with no dial wait.
// max-ns is the slowest single call.
func BenchmarkFallbackDown(b *testing.B) {
	ctx := context.Background()
	srv := redistest.Start(b)
	rc := newClient(b, srv.Addr())
	sw := &redistest.Switch{}
	f := cache.New(rc, cache.Options{Logger: quiet, Watch: sw.Watch})
	b.Cleanup(f.Close)
	sw.Set(true)
	s := f.Namespace("bench")
	srv.Kill()
	sw.Set(false)
	if err := s.Set(ctx, "k", benchValue, time.Minute); err != nil {
		b.Fatal(err)
	}

	// Besides ns/op it reports the share of calls over 1 ms, the 99.9th
	// percentile (as a power-of-two upper bound) and the slowest call; on a
	// loaded machine the slowest includes the OS descheduling the benchmark.
	run := func(b *testing.B, op func() error) {
		b.ReportAllocs()
		var hist [64]int64 // hist[i]: calls that took < 2^i ns
		var slowest time.Duration
		var over int64
		for b.Loop() {
			t0 := time.Now()
			if err := op(); err != nil && !errors.Is(err, cache.ErrNotFound) {
				b.Fatal(err)
			}
			d := time.Since(t0)
			hist[bits.Len64(uint64(d))]++
			slowest = max(slowest, d)
			if d >= time.Millisecond {
				over++
			}
		}
		b.ReportMetric(float64(over)/float64(b.N), "over-1ms/op")
		b.ReportMetric(percentile(hist[:], b.N, 0.999), "p99.9-ns")
		b.ReportMetric(float64(slowest.Nanoseconds()), "max-ns")
	}
	// The same loop around a call that does nothing, and around one that
	// only allocates what a Get returns: their max-ns and over-1ms/op are what
	// the machine and the garbage collector add.
	b.Run("baseline-noop", func(b *testing.B) {
		run(b, func() error { return nil })
	})
	b.Run("baseline-alloc", func(b *testing.B) {
		run(b, func() error { benchSink = append(make([]byte, 0, len(benchValue)), benchValue...); return nil })
	})
	b.Run("Get", func(b *testing.B) {
		run(b, func() error { _, err := s.Get(ctx, "k"); return err })
	})
	b.Run("Set", func(b *testing.B) {
		run(b, func() error { return s.Set(ctx, "k", benchValue, time.Minute) })
	})
	b.Run("GetOrLoad", func(b *testing.B) {
		run(b, func() error {
			_, err := s.GetOrLoad(ctx, "k", time.Minute, func(context.Context) ([]byte, error) { return benchValue, nil })
			return err
		})
	})
}

// percentile returns the upper bound, in ns, of the log2 bucket holding
// quantile q of n samples.
func percentile(hist []int64, n int, q float64) float64 {
	want := int64(float64(n) * q)
	var seen int64
	for i, c := range hist {
		seen += c
		if seen >= want {
			return float64(uint64(1) << i)
		}
	}
	return 0
}
