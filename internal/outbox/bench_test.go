package outbox_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/outbox"
	"github.com/taskhost/taskhost/internal/redistest"
)

// benchPayload is a typical small JSON payload.
var benchPayload = []byte(`{"user_id":123456,"template":"welcome","locale":"en-GB","vars":{"name":"Ada Lovelace","plan":"pro"}}`)

// refill bounds the memory a held-enqueue benchmark uses: the outbox is
// replaced, outside the timer, every this many tasks.
const refill = 50_000

// BenchmarkEnqueue measures one enqueue on each path against the same
// redis-server in the same run:
//
//	bare-asynq     asynq.Client.Enqueue, the baseline
//	direct         outbox.Client while Redis is ready
//	memory-outbox  outbox.Client holding in memory (Redis not ready)
//	file-outbox    outbox.Client holding in a bbolt file, fsync per call
//	file-outbox-parallel  the same from GOMAXPROCS*8 goroutines, whose
//	               writes share transactions
//	fsync-append   the floor for any durable store on this disk: append
//	               one encoded task to a file and fsync it
func BenchmarkEnqueue(b *testing.B) {
	srv := redistest.Start(b)
	rdb := sharedClient(b, srv.Addr())
	task := asynq.NewTask("bench:t", benchPayload)
	ctx := context.Background()

	b.Run("bare-asynq", func(b *testing.B) {
		c := asynq.NewClientFromRedisClient(rdb)
		for b.Loop() {
			if _, err := c.Enqueue(task); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		c := benchClient(b, rdb, true, nil)
		for b.Loop() {
			if _, err := c.Enqueue(task); err != nil {
				b.Fatal(err)
			}
		}
	})
	held := func(b *testing.B, store func() outbox.Store) {
		c := benchClient(b, rdb, false, store())
		i := 0
		for b.Loop() {
			if i++; i%refill == 0 {
				b.StopTimer()
				require.NoError(b, c.Close())
				c = benchClient(b, rdb, false, store())
				b.StartTimer()
			}
			r, err := c.Submit(ctx, task)
			if err != nil || !r.Held {
				b.Fatal(err)
			}
		}
	}
	b.Run("memory-outbox", func(b *testing.B) { held(b, func() outbox.Store { return nil }) })
	b.Run("file-outbox", func(b *testing.B) { held(b, freshFile(b)) })
	b.Run("file-outbox-parallel", func(b *testing.B) {
		c := benchClient(b, rdb, false, freshFile(b)())
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Submit(ctx, task); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("fsync-append", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "log"))
		require.NoError(b, err)
		defer f.Close()
		rec := make([]byte, 300)
		for b.Loop() {
			if _, err := f.Write(rec); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDirectOverhead alternates a bare asynq enqueue with a direct
// outbox enqueue in every iteration, so both see the same load on a shared
// machine, and reports each one's mean and their ratio.
func BenchmarkDirectOverhead(b *testing.B) {
	srv := redistest.Start(b)
	rdb := sharedClient(b, srv.Addr())
	bare := asynq.NewClientFromRedisClient(rdb)
	c := benchClient(b, rdb, true, nil)
	task := asynq.NewTask("bench:t", benchPayload)
	var tBare, tDirect time.Duration
	i := 0
	for b.Loop() {
		i++
		first, second := func() error { _, err := bare.Enqueue(task); return err }, func() error { _, err := c.Enqueue(task); return err }
		tf, ts := &tBare, &tDirect
		if i%2 == 0 { // alternate who goes first
			first, second, tf, ts = second, first, ts, tf
		}
		start := time.Now()
		if err := first(); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if err := second(); err != nil {
			b.Fatal(err)
		}
		*tf += mid.Sub(start)
		*ts += time.Since(mid)
	}
	b.ReportMetric(float64(tBare.Nanoseconds())/float64(i), "bare-ns/op")
	b.ReportMetric(float64(tDirect.Nanoseconds())/float64(i), "direct-ns/op")
	b.ReportMetric(float64(tDirect)/float64(tBare), "direct/bare")
}

func benchClient(b *testing.B, rdb redis.UniversalClient, ready bool, store outbox.Store) *outbox.Client {
	b.Helper()
	var r atomic.Bool
	r.Store(ready)
	c, err := outbox.New(asynq.NewClientFromRedisClient(rdb), r.Load, outbox.Options{
		Store: store, MaxTasks: refill + 1, MaxBytes: 1 << 30,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(b, err)
	b.Cleanup(func() { _ = c.Close() })
	return c
}

// freshFile returns a function that opens a new outbox file each call.
func freshFile(b *testing.B) func() outbox.Store {
	dir := b.TempDir()
	n := 0
	return func() outbox.Store {
		n++
		s, err := outbox.OpenFile(filepath.Join(dir, fmt.Sprintf("outbox-%d.db", n)))
		require.NoError(b, err)
		return s
	}
}
