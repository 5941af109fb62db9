package health

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrPanic wraps the value of a check or source function that panicked.
var ErrPanic = errors.New("healthcheck: panic")

// flight runs at most one call of a function at a time. A caller that
// arrives while a call is running waits on that call instead of starting
// another, so a hung function costs one goroutine, not one per probe, and a
// storm of probes costs Redis one round.
type flight[T any] struct {
	mu  sync.Mutex
	cur *call[T]
}

type call[T any] struct {
	done chan struct{}
	val  T
	err  error
	dur  time.Duration
}

// start returns the running call, or starts fn in a goroutine under a
// context that keeps parent's values, drops its cancellation and ends after
// timeout.
func (f *flight[T]) start(parent context.Context, timeout time.Duration, fn func(context.Context) (T, error)) *call[T] {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cur != nil {
		return f.cur
	}
	c := &call[T]{done: make(chan struct{})}
	f.cur = c
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), timeout)
	go func() {
		begin := time.Now()
		defer func() {
			if r := recover(); r != nil {
				c.err = fmt.Errorf("%w: %v", ErrPanic, r)
			}
			cancel()
			c.dur = time.Since(begin)
			f.mu.Lock()
			f.cur = nil
			f.mu.Unlock()
			close(c.done)
		}()
		c.val, c.err = fn(ctx)
	}()
	return c
}

// outcome is what a waiter learned about a call.
type outcome[T any] struct {
	val      T
	err      error
	dur      time.Duration
	timedOut bool
}

// do runs fn through f and waits for it until ctx ends or timeout passes,
// whichever is first. A call that has not finished by then is reported as
// timed out and left to finish on its own.
func (f *flight[T]) do(ctx context.Context, timeout time.Duration, fn func(context.Context) (T, error)) outcome[T] {
	begin := time.Now()
	c := f.start(ctx, timeout, fn)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.done:
		o := outcome[T]{val: c.val, err: c.err, dur: c.dur}
		o.timedOut = errors.Is(c.err, context.DeadlineExceeded)
		return o
	case <-t.C:
	case <-ctx.Done():
	}
	return outcome[T]{err: fmt.Errorf("timed out after %s", time.Since(begin).Round(time.Millisecond)), dur: time.Since(begin), timedOut: true}
}

func (o outcome[T]) status() CheckStatus {
	switch {
	case o.timedOut:
		return CheckTimeout
	case o.err != nil:
		return CheckFail
	}
	return CheckOK
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
