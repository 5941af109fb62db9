package taskhost_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
)

// BenchmarkWakeSources compares, on one redis-server in the same run, how
// fast each candidate source of wake-ups tells a waiting worker that a task
// was pushed to an empty pending list: the time from the LPUSH's reply to
// the waiter's wake-up, on a 2-core machine shared with other work.
//
//		go test -run '^$' -bench BenchmarkWakeSources -benchtime 2000x .
//
//	  - blmove: BLMOVE pending pending LEFT LEFT on a connection of its own
//	    (the default source); needs nothing from the server's config.
//	  - keyspace: a subscription to the list's keyspace channel, with
//	    notify-keyspace-events set to Kl (CONFIG SET; worker.wakeup: notify).
//	  - publish: the enqueuer sends PUBLISH after its LPUSH, in one pipeline;
//	    only tasks from such a client would wake a worker, not those of a
//	    plain asynq.Client or of asynq's forwarder.
//
// Each push follows an idle gap of 1 ms, as a sparse stream's would. It
// reports the p50 and p99 in microseconds (ns/op counts the gaps too).
func BenchmarkWakeSources(b *testing.B) {
	s := redistest.Start(b)
	ctx := context.Background()
	newClient := func() *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: s.Addr(), PoolSize: 4})
		b.Cleanup(func() { _ = c.Close() })
		return c
	}
	pusher := newClient()
	require.NoError(b, pusher.ConfigSet(ctx, "notify-keyspace-events", "Kl").Err())
	const key = "asynq:{bench}:pending"
	report := func(b *testing.B, lat []time.Duration) {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}

	b.Run("blmove", func(b *testing.B) {
		waiter := newClient()
		woke := make(chan time.Time)
		armed := make(chan struct{})
		go func() {
			for {
				armed <- struct{}{}
				if err := waiter.BLMove(ctx, key, key, "LEFT", "LEFT", 5*time.Second).Err(); err != nil {
					close(woke)
					return
				}
				woke <- time.Now()
			}
		}()
		lat := make([]time.Duration, 0, b.N)
		for b.Loop() {
			<-armed
			time.Sleep(time.Millisecond) // idle; the call blocks
			t0 := time.Now()
			require.NoError(b, pusher.LPush(ctx, key, "t").Err())
			lat = append(lat, (<-woke).Sub(t0))
			require.NoError(b, pusher.Del(ctx, key).Err())
		}
		b.StopTimer()
		_ = waiter.Close()
		<-armed
		report(b, lat)
	})

	for _, name := range []string{"keyspace", "publish"} {
		b.Run(name, func(b *testing.B) {
			channel := "__keyspace@0__:" + key
			if name == "publish" {
				channel = "taskhost:wake:bench"
			}
			ps := newClient().Subscribe(ctx, channel)
			b.Cleanup(func() { _ = ps.Close() })
			_, err := ps.Receive(ctx)
			require.NoError(b, err)
			msgs := ps.Channel()
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				time.Sleep(time.Millisecond) // idle
				t0 := time.Now()
				if name == "publish" {
					_, err = pusher.Pipelined(ctx, func(p redis.Pipeliner) error {
						p.LPush(ctx, key, "t")
						p.Publish(ctx, channel, key)
						return nil
					})
				} else {
					err = pusher.LPush(ctx, key, "t").Err()
				}
				require.NoError(b, err)
				for m := range msgs {
					if m.Payload == "lpush" || m.Payload == key {
						break
					}
				}
				lat = append(lat, time.Since(t0))
				require.NoError(b, pusher.Del(ctx, key).Err())
				for len(msgs) > 0 { // the del event
					<-msgs
				}
			}
			report(b, lat)
		})
	}
}
