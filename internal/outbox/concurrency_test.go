package outbox_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/outbox"
	"github.com/taskhost/taskhost/internal/redistest"
)

// 50 goroutines enqueue through an outage: Redis is SIGKILLed while they
// run (the monitor's flag follows a moment later, so some direct enqueues
// fail and must fall back), then restarted from its AOF.
func TestConcurrentEnqueueAcrossOutage(t *testing.T) {
	t.Parallel()
	const workers, each = 50, 60
	const total = workers * each
	srv := redistest.Start(t, redistest.Options{AOF: true, AppendFsync: "always"})
	f := setup(t, srv.Addr(), outbox.Options{DrainRate: math.Inf(1), CheckInterval: 50 * time.Millisecond})
	f.ready.Store(true)

	var done, held atomic.Int64
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for k := range each {
				i := w*each + k
				r, err := f.c.Submit(context.Background(), asynq.NewTask("conc:t", payload(i)))
				if err != nil {
					errs <- fmt.Errorf("task %d: %w", i, err)
					return
				}
				if r.Held {
					held.Add(1)
				}
				done.Add(1)
				time.Sleep(time.Millisecond)
			}
		})
	}
	waitFor := func(n int64) {
		require.Eventually(t, func() bool { return done.Load() >= n || len(errs) > 0 }, time.Minute, time.Millisecond)
	}

	waitFor(total / 5)
	srv.Kill()
	waitFor(total * 3 / 10)
	f.ready.Store(false)
	waitFor(total * 6 / 10)
	srv.MustRestart(t)
	f.ready.Store(true)
	f.c.Kick()

	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	f.up()
	t.Logf("%d of %d tasks went through the outbox", held.Load(), total)
	require.Positive(t, held.Load())
	requireExactlyOnce(t, inRedis(t, f.rdb, "default"), total)
}
