package taskrun

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/encoding/protowire"
)

// startTimeout bounds the wait for asynq's processor to hand the task over.
const startTimeout = 10 * time.Second

// Runner runs tasks through asynq's processor, one at a time. Its zero value
// is not usable; call New, and Close when done.
type Runner struct {
	mu     sync.Mutex // one run at a time
	m      *miniredis.Miniredis
	rdb    *redis.Client
	client *asynq.Client
}

// New starts the runner's in-process Redis on a loopback port.
func New() (*Runner, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("taskrun: start redis: %w", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1})
	return &Runner{m: m, rdb: rdb, client: asynq.NewClientFromRedisClient(rdb)}, nil
}

// Close stops the runner's Redis.
func (r *Runner) Close() {
	_ = r.client.Close()
	_ = r.rdb.Close()
	r.m.Close()
}

// retried is the option Retried returns. asynq ignores options that are not
// its own.
type retried int

// Retried is an option for Run: the task has been retried n times already,
// as asynq.GetRetryCount reports to the handler.
func Retried(n int) asynq.Option { return retried(n) }

func (o retried) String() string         { return fmt.Sprintf("Retried(%d)", int(o)) }
func (o retried) Type() asynq.OptionType { return asynq.OptionType(-1) }
func (o retried) Value() interface{}     { return int(o) }

// Run enqueues task with opts on the runner's Redis (asynq.TaskID,
// asynq.Queue, asynq.MaxRetry, asynq.Timeout and the others as asynq reads
// them, plus Retried), lets an asynq server fetch it, and calls fn on the
// caller's goroutine with the context and task that asynq's processor made.
// It returns fn's error. The context also ends when ctx does. The task is
// then removed, so an ID can be used again. A panic in fn is not recovered:
// it reaches the caller.
func (r *Runner) Run(ctx context.Context, task *asynq.Task, opts []asynq.Option, fn func(context.Context, *asynq.Task) error) (err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.m.FlushAll()

	n := 0
	var aopts []asynq.Option
	for _, o := range opts {
		if v, ok := o.(retried); ok {
			n = int(v)
			continue
		}
		aopts = append(aopts, o)
	}
	info, err := r.client.EnqueueContext(ctx, task, aopts...)
	if err != nil {
		return fmt.Errorf("taskrun: enqueue: %w", err)
	}
	if n > 0 {
		if n > info.MaxRetry {
			return fmt.Errorf("taskrun: Retried(%d) is more than the task's max retry (%d)", n, info.MaxRetry)
		}
		if err := r.setRetried(ctx, info.Queue, info.ID, n); err != nil {
			return err
		}
	}

	type handoff struct {
		ctx  context.Context
		task *asynq.Task
	}
	got := make(chan handoff)
	result := make(chan error, 1)
	srv := asynq.NewServerFromRedisClient(r.rdb, asynq.Config{
		Concurrency:     1,
		Queues:          map[string]int{info.Queue: 1},
		Logger:          quiet{},
		LogLevel:        asynq.FatalLevel,
		ShutdownTimeout: time.Second,
		RetryDelayFunc:  func(int, error, *asynq.Task) time.Duration { return time.Hour },
	})
	var once sync.Once
	release := func(err error) { once.Do(func() { result <- err }) }
	handler := asynq.HandlerFunc(func(actx context.Context, t *asynq.Task) error {
		select {
		case got <- handoff{actx, t}:
		case <-actx.Done():
			return actx.Err()
		}
		return <-result
	})
	if err := srv.Start(handler); err != nil {
		return fmt.Errorf("taskrun: start asynq server: %w", err)
	}
	defer srv.Shutdown()
	defer release(nil) // unblocks the handler, also when fn panics

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	var h handoff
	select {
	case h = <-got:
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return errors.New("taskrun: asynq did not fetch the task in time")
	}
	hctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	err = fn(hctx, h.task)
	release(err)
	return err
}

// taskKey is where asynq v0.26.0 keeps a task (base.TaskKey); its field
// "msg" holds the task's protobuf message.
func taskKey(queue, id string) string { return "asynq:{" + queue + "}:t:" + id }

// retriedField is the number of TaskMessage.retried in asynq v0.26.0's
// internal/proto/asynq.proto.
const retriedField protowire.Number = 6

// setRetried rewrites the stored message's retry count.
func (r *Runner) setRetried(ctx context.Context, queue, id string, n int) error {
	key := taskKey(queue, id)
	msg, err := r.rdb.HGet(ctx, key, "msg").Bytes()
	if err != nil {
		return fmt.Errorf("taskrun: read task %s (asynq's layout changed?): %w", key, err)
	}
	out, err := setVarint(msg, retriedField, uint64(n))
	if err != nil {
		return fmt.Errorf("taskrun: task %s: %w", key, err)
	}
	return r.rdb.HSet(ctx, key, "msg", out).Err()
}

// setVarint returns msg with field num set to the varint v: every
// occurrence of the field dropped, and one appended.
func setVarint(msg []byte, num protowire.Number, v uint64) ([]byte, error) {
	out := make([]byte, 0, len(msg)+4)
	for b := msg; len(b) > 0; {
		n, typ, tagLen := protowire.ConsumeTag(b)
		if tagLen < 0 {
			return nil, protowire.ParseError(tagLen)
		}
		valLen := protowire.ConsumeFieldValue(n, typ, b[tagLen:])
		if valLen < 0 {
			return nil, protowire.ParseError(valLen)
		}
		if n != num {
			out = append(out, b[:tagLen+valLen]...)
		}
		b = b[tagLen+valLen:]
	}
	out = protowire.AppendTag(out, num, protowire.VarintType)
	return protowire.AppendVarint(out, v), nil
}

// quiet drops asynq's log lines; the run's outcome is fn's error.
type quiet struct{}

func (quiet) Debug(...any) {}
func (quiet) Info(...any)  {}
func (quiet) Warn(...any)  {}
func (quiet) Error(...any) {}
func (quiet) Fatal(...any) {}
