package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/taskhost/taskhost/internal/tracing"
)

// Defaults for the zero Options fields; they match the runtime's config.
const (
	DefaultMaxTasks      = 100_000
	DefaultMaxBytes      = 64 << 20
	DefaultDrainRate     = 2000
	DefaultCheckInterval = time.Second
)

// Options configure a Client. The zero value is a memory outbox with the
// default bounds.
type Options struct {
	// Store persists held tasks. Nil keeps them in memory only, so they
	// are lost when the process ends. The Client owns the store: Close
	// closes it, and so does New when it fails.
	Store Store
	// MaxTasks bounds the number of held tasks (default 100,000).
	MaxTasks int
	// MaxBytes bounds the encoded size of held tasks (default 64 MiB).
	MaxBytes int64
	// DrainRate bounds delivery from the outbox, in tasks per second
	// (default 2,000). math.Inf(1) removes the bound.
	DrainRate float64
	// MaxPayloadBytes bounds a task's payload: Submit refuses a larger one
	// with a *PayloadError before anything is sent or held. 0 means no
	// bound; the runtime sets worker.max_payload_bytes.
	MaxPayloadBytes int
	// CheckInterval is how often a non-empty outbox checks Ready on its
	// own, besides Kick (default 1 s).
	CheckInterval time.Duration
	// Logger receives the outbox's few log lines, with component=outbox
	// (default slog.Default()).
	Logger *slog.Logger
	// Tracer, when set, traces each Submit and each delivery from the
	// outbox; nil (tracing off) adds nothing to either.
	Tracer *tracing.Tracer
}

// Result is the outcome of Submit.
type Result struct {
	// Info describes the task. For a held task, it is what asynq would
	// have returned had Redis taken the task at that moment.
	Info *asynq.TaskInfo
	// Held is true when the task is in the outbox rather than in Redis.
	Held bool
}

// Client enqueues asynq tasks, holding them in an outbox while Redis is not
// ready and delivering them when it is. Its Enqueue and EnqueueContext have
// asynq.Client's signatures. It is safe for concurrent use.
type Client struct {
	inner *asynq.Client
	ready func() bool
	store Store
	opts  Options
	log   *slog.Logger
	lim   *rate.Limiter
	// tracer is Options.Tracer; nil when tracing is off.
	tracer *tracing.Tracer

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	ctx       context.Context
	cancel    context.CancelFunc
	kick      chan struct{}
	loopDone  chan struct{}

	holds    sync.WaitGroup // holds under way; Add only under mu while open
	mu       sync.Mutex
	q        queue // held tasks in acceptance order
	ids      map[string]int
	bytes    int64
	resTasks int   // holds reserved, being written to the store
	resBytes int64 // their bytes
	nextSeq  uint64
	holding  bool // a hold was logged and the outbox has not emptied since
	fullLog  bool // ErrOutboxFull was logged in this holding spell

	drain drainState // touched only by the drain loop
}

// New returns a Client that enqueues through inner while ready reports
// true. inner should be made with asynq.NewClientFromRedisClient over the
// process's shared client; the Client never closes it. New loads the tasks
// held in opts.Store and starts the drain loop; call Close to stop it.
func New(inner *asynq.Client, ready func() bool, opts Options) (*Client, error) {
	fail := func(err error) (*Client, error) {
		if opts.Store != nil {
			_ = opts.Store.Close()
		}
		return nil, err
	}
	switch {
	case !taskOptsFound:
		return fail(errors.New("outbox: this asynq version hides Task options where the outbox cannot read them"))
	case inner == nil || ready == nil:
		return fail(errors.New("outbox: New needs an asynq client and a ready function"))
	case opts.MaxTasks < 0 || opts.MaxBytes < 0 || opts.DrainRate < 0 || math.IsNaN(opts.DrainRate):
		return fail(fmt.Errorf("outbox: MaxTasks, MaxBytes and DrainRate must not be negative"))
	}
	if opts.Store == nil {
		opts.Store = memoryStore{}
	}
	if opts.MaxTasks == 0 {
		opts.MaxTasks = DefaultMaxTasks
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.DrainRate == 0 {
		opts.DrainRate = DefaultDrainRate
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = DefaultCheckInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Client{
		inner:    inner,
		ready:    ready,
		store:    opts.Store,
		opts:     opts,
		log:      opts.Logger.With("component", "outbox"),
		lim:      newLimiter(opts.DrainRate),
		tracer:   opts.Tracer,
		kick:     make(chan struct{}, 1),
		loopDone: make(chan struct{}),
		ids:      make(map[string]int),
		nextSeq:  1,
	}
	if err := c.load(); err != nil {
		return fail(err)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.loop()
	return c, nil
}

func newLimiter(perSec float64) *rate.Limiter {
	if math.IsInf(perSec, 1) {
		return rate.NewLimiter(rate.Inf, 1)
	}
	return rate.NewLimiter(rate.Limit(perSec), max(1, int(perSec/20))) // a burst of 50 ms
}

// quarantiner is a Store that can set unreadable records aside.
type quarantiner interface {
	Quarantine(recs ...Record) error
}

// load reads the held tasks of a persistent store into memory. A record
// that does not decode is moved to the store's quarantine (FileStore) and
// reported in one ERROR line; the others load and drain.
func (c *Client) load() error {
	var bad []Record
	var firstErr error
	err := c.store.Load(func(r Record) error {
		c.nextSeq = max(c.nextSeq, r.Seq+1)
		s, err := decode(r.Data)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			bad = append(bad, r)
			return nil
		}
		c.add(&entry{seq: r.Seq, id: s.ID, data: r.Data, at: s.Accepted})
		return nil
	})
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		seqs := make([]uint64, len(bad))
		for i, r := range bad {
			seqs[i] = r.Seq
		}
		where := "kept in place"
		if q, ok := c.store.(quarantiner); ok {
			if err := q.Quarantine(bad...); err != nil {
				return fmt.Errorf("outbox: quarantine %d unreadable stored tasks: %w", len(bad), err)
			}
			where = "moved to the file's quarantine bucket"
		}
		c.log.Error("outbox held tasks that cannot be read; the others are delivered", "unreadable", len(bad),
			"seqs", seqs, "where", where, "error", firstErr.Error())
	}
	if n := c.q.len(); n > 0 {
		c.holding = true
		c.log.Info("outbox loaded held tasks", "tasks", n, "bytes", c.bytes, "oldest", c.q.front().at)
	}
	return nil
}

// add appends e to the held tasks; c.mu is held or c is not yet shared.
func (c *Client) add(e *entry) {
	c.q.push(e)
	c.ids[e.id]++
	c.bytes += int64(len(e.data))
}

// Enqueue enqueues task like asynq.Client.Enqueue, holding it in the outbox
// when Redis is not ready; see Submit.
func (c *Client) Enqueue(task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	r, err := c.Submit(context.Background(), task, opts...)
	return r.Info, err
}

// EnqueueContext enqueues task like asynq.Client.EnqueueContext, holding
// it in the outbox when Redis is not ready; see Submit.
func (c *Client) EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	r, err := c.Submit(ctx, task, opts...)
	return r.Info, err
}

// Submit enqueues task with opts and says whether it went to Redis or to
// the outbox.
//
// Every task gets its ID before anything is sent: the caller's TaskID, or
// a new UUID. While Redis is ready, Submit enqueues directly. While it is
// not, or when the direct enqueue fails with a connection error, Submit
// holds the task and returns at once with Held set and Info describing the
// task as pending, scheduled or aggregating. A held task is delivered later
// with the same ID and options; ProcessIn is kept as the absolute time it
// meant at Submit.
//
// Errors: asynq's own (validation, ErrDuplicateTask, ErrTaskIDConflict)
// as asynq returns them; a *PayloadError (ErrPayloadTooLarge) for a payload
// above Options.MaxPayloadBytes; ErrOutboxFull, wrapped, when the outbox is
// at a bound; ErrClosed after Close; the context's error when ctx is done.
func (c *Client) Submit(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (res Result, err error) {
	if c.closed.Load() {
		return Result{}, ErrClosed
	}
	if task == nil {
		return Result{}, errors.New("task cannot be nil")
	}
	if err := CheckPayload(task, c.opts.MaxPayloadBytes); err != nil {
		return Result{}, err
	}
	id, ok := lastTaskID(taskOptions(task), opts)
	if !ok {
		id = uuid.NewString()
		opts = append(opts[:len(opts):len(opts)], asynq.TaskID(id))
	}
	if c.tracer != nil {
		var span trace.Span
		ctx, task, span = c.traceSend(ctx, task, opts, id)
		defer func() { tracing.EndSend(span, id, res.Held, err) }()
	}
	if !c.ready() {
		return c.hold(ctx, task, opts, id, nil)
	}
	info, err := c.inner.EnqueueContext(ctx, task, opts...)
	if err == nil {
		return Result{Info: info}, nil
	}
	if !isConnError(ctx, err) {
		return Result{}, err
	}
	return c.hold(ctx, task, opts, id, err)
}

// hold puts task in the outbox. cause is the direct enqueue's error, or
// nil when Redis was not ready.
func (c *Client) hold(ctx context.Context, task *asynq.Task, opts []asynq.Option, id string, cause error) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	now := time.Now()
	s, err := compose(task, opts, id, now)
	if err != nil {
		return Result{}, err
	}
	data, err := s.encode()
	if err != nil {
		return Result{}, fmt.Errorf("outbox: encode task %s: %w", s.ID, err)
	}
	size := int64(len(data))

	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		return Result{}, ErrClosed
	}
	tasks, bytes := c.q.len()+c.resTasks, c.bytes+c.resBytes
	if tasks+1 > c.opts.MaxTasks || bytes+size > c.opts.MaxBytes {
		logFull := !c.fullLog
		c.fullLog = true
		c.mu.Unlock()
		err := fmt.Errorf("%w: holding %d tasks, %d bytes (max %d tasks, %d bytes); task %s of %d bytes refused",
			ErrOutboxFull, tasks, bytes, c.opts.MaxTasks, c.opts.MaxBytes, s.ID, size)
		if logFull {
			c.log.Error("outbox full: refusing enqueues", "tasks", tasks, "bytes", bytes,
				"max_tasks", c.opts.MaxTasks, "max_bytes", c.opts.MaxBytes)
		}
		return Result{}, err
	}
	c.resTasks++
	c.resBytes += size
	seq := c.nextSeq
	c.nextSeq++
	c.holds.Add(1)
	defer c.holds.Done()
	c.mu.Unlock()

	err = c.store.Append(Record{Seq: seq, Data: data})

	c.mu.Lock()
	c.resTasks--
	c.resBytes -= size
	first := false
	if err == nil {
		c.add(&entry{seq: seq, id: s.ID, data: data, at: now})
		first, c.holding = !c.holding, true
	}
	c.mu.Unlock()
	if err != nil {
		return Result{}, fmt.Errorf("outbox: hold task %s: %w", s.ID, err)
	}
	if first {
		if cause != nil {
			c.log.Warn("holding enqueues in the outbox: enqueue failed", "error", cause.Error())
		} else {
			c.log.Warn("holding enqueues in the outbox: redis not ready")
		}
	}
	return Result{Info: s.info(now), Held: true}, nil
}

// Held reports whether a task with this ID is in the outbox, accepted and
// not yet acknowledged by Redis.
func (c *Client) Held(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[id] > 0
}

// Depth returns the number of held tasks and their encoded size.
func (c *Client) Depth() (tasks int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.q.len(), c.bytes
}

// Oldest returns when the oldest held task was accepted, or the zero time
// when the outbox is empty.
func (c *Client) Oldest() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.q.len() == 0 {
		return time.Time{}
	}
	return c.q.front().at
}

// Kick starts a drain now if Redis is ready and tasks are held. The runtime
// calls it when its connection monitor reports ready; without it, a drain
// starts within Options.CheckInterval. It never blocks.
func (c *Client) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Flush drains the outbox and waits until it is empty or ctx is done. It
// is meant for a graceful stop, before Close.
func (c *Client) Flush(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		n, _ := c.Depth()
		if n == 0 {
			return nil
		}
		if c.closed.Load() {
			return ErrClosed
		}
		c.Kick()
		select {
		case <-ctx.Done():
			return fmt.Errorf("outbox: flush: %d tasks still held: %w", n, ctx.Err())
		case <-t.C:
		}
	}
}

// Close stops draining, waits for a delivery in progress, and closes the
// store. Tasks held in a memory outbox are lost, and logged as such; a file
// outbox keeps them for the next start. Close does not close the asynq
// client or Redis. It is safe to call more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed.Store(true)
		c.mu.Unlock()
		c.holds.Wait() // a task being held is counted below, not lost unseen
		c.cancel()
		<-c.loopDone
		n, b := c.Depth()
		if _, mem := c.store.(memoryStore); mem && n > 0 {
			c.log.Error("outbox closed with tasks held in memory: they are lost", "tasks", n, "bytes", b)
		} else if n > 0 {
			c.log.Info("outbox closed with tasks held in its file", "tasks", n, "bytes", b)
		}
		c.closeErr = c.store.Close()
	})
	return c.closeErr
}
