package taskhost

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost/internal/outbox"
)

// Errors that callers act on.
var (
	// ErrOutboxFull is returned, wrapped with the outbox's depth and
	// bounds, when Redis is down and the outbox is at outbox.max_tasks or
	// outbox.max_bytes. The task was not accepted; retry later or shed it.
	ErrOutboxFull = outbox.ErrOutboxFull
	// ErrClosed is returned by a Client after its Close or after the
	// runtime stopped, and by WaitReady when the runtime stops first.
	ErrClosed = errors.New("taskhost: closed")
	// ErrPayloadTooLarge is matched by the error of a task whose payload
	// is larger than worker.max_payload_bytes: Client, Host.Enqueue and
	// Host.Schedule refuse it before anything is sent, and a worker
	// archives one that another client enqueued.
	ErrPayloadTooLarge = outbox.ErrPayloadTooLarge
)

// Client enqueues tasks like asynq.Client, whose Enqueue, EnqueueContext and
// Close it has, through the runtime's outbox: while Redis is down it holds
// the tasks, in memory or in the outbox.path file, and delivers them once,
// by task ID, when Redis is ready again. Get one from Runtime.Client. It is
// safe for concurrent use.
type Client struct {
	o      *outbox.Client
	closed atomic.Bool
}

// Result is what Submit returns.
type Result struct {
	// Info describes the task. For a held task it is what asynq would have
	// returned had Redis taken the task at that moment.
	Info *asynq.TaskInfo
	// Held is true when the task is in the outbox rather than in Redis.
	Held bool
}

// Enqueue is EnqueueContext with context.Background().
func (c *Client) Enqueue(task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	r, err := c.Submit(context.Background(), task, opts...)
	return r.Info, err
}

// EnqueueContext enqueues task like asynq.Client.EnqueueContext, holding it
// in the outbox while Redis is down; see Submit.
func (c *Client) EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	r, err := c.Submit(ctx, task, opts...)
	return r.Info, err
}

// Submit enqueues task and says whether it went to Redis or to the outbox.
//
// Every task gets its ID before anything is sent: the asynq.TaskID option,
// or a new UUID. While Redis is ready, Submit enqueues directly; while it is
// not, or when the enqueue fails because Redis cannot serve, Submit holds
// the task and returns at once with Held set. A held task is delivered later
// with the same ID and options (ProcessIn is kept as the absolute time it
// meant), so a replay cannot run it twice.
//
// Errors: asynq's own (a bad option, asynq.ErrDuplicateTask,
// asynq.ErrTaskIDConflict) as asynq returns them; ErrPayloadTooLarge and
// ErrOutboxFull, wrapped; ErrClosed; ctx's error when ctx is done.
func (c *Client) Submit(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (Result, error) {
	if c.closed.Load() {
		return Result{}, ErrClosed
	}
	r, err := c.o.Submit(ctx, task, opts...)
	if errors.Is(err, outbox.ErrClosed) {
		return Result{}, ErrClosed
	}
	return Result{Info: r.Info, Held: r.Held}, err
}

// Close releases this Client: its later calls return ErrClosed. It does
// not close the runtime's outbox, which goes on delivering what it holds
// and is closed by Runtime.Stop, nor any other Client. It returns nil.
func (c *Client) Close() error {
	c.closed.Store(true)
	return nil
}
