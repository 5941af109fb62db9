package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/hibiken/asynq"
)

// One run per tick across the fleet: every worker runs every entry, computes
// the same tick times (Spec), and enqueues each tick with the task ID
// TickID(entry, tick) and a retention that keeps the ID after the task
// completes. The first enqueue of a tick wins; Redis refuses the others with
// ErrTaskIDConflict. No worker is special, so a worker that dies or stops
// costs no tick as long as another one runs. A tick whose enqueue fails
// (Redis unreachable, a failover) is retried within its window (its window: until
// the next tick, but at least a minute); retries are safe for the same
// reason, and the retention outlasts the window.

// SkewMargin is added to each tick's retention on top of the time the tick
// can be retried. A task ID is kept until its task completed plus the
// retention; a worker whose clock is behind by s enqueues up to s later, and
// the first copy may have been enqueued s early by a clock that is ahead. So
// the fleet tolerates clocks up to SkewMargin/2 apart (30 s, the skew that
// asynq's recoverer assumes too).
const SkewMargin = time.Minute

// MinWindow and MaxWindow bound how long one tick's enqueue is retried (see
// Scheduler.window), and with it the retention of a tick's task ID: the window plus
// SkewMargin.
const (
	MinWindow = time.Minute
	MaxWindow = 24 * time.Hour
)

// Results of a tick, as Status and the metrics name them.
const (
	// ResultEnqueued: this worker enqueued the tick.
	ResultEnqueued = "enqueued"
	// ResultDuplicate: another worker had enqueued it (ErrTaskIDConflict).
	ResultDuplicate = "duplicate"
	// ResultUnique: refused by the entry's uniqueness lock (asynq.Unique):
	// the task of an earlier tick still holds it.
	ResultUnique = "unique_locked"
	// ResultMissed: every attempt failed until the tick's window closed.
	ResultMissed = "missed"
)

// Results lists the results.
var Results = []string{ResultEnqueued, ResultDuplicate, ResultUnique, ResultMissed}

// Enqueuer enqueues a task, as asynq.Client.EnqueueContext does.
type Enqueuer func(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)

// Options configure a Scheduler.
type Options struct {
	// Enqueue enqueues a tick's task; required.
	Enqueue Enqueuer
	// Wait blocks until Redis is ready (true) or ctx ends (false); a failed
	// enqueue waits for it before the next attempt. nil waits for nothing.
	Wait func(ctx context.Context) bool
	// Logger gets a warning at the first tick missed in a run of misses,
	// and a line when enqueues succeed again.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// RetryMin and RetryMax bound the pause between attempts at one tick
	// (defaults 100ms and 5s).
	RetryMin, RetryMax time.Duration
	// AttemptTimeout bounds one enqueue attempt (default 5s).
	AttemptTimeout time.Duration
	// MinWindow is the shortest time a tick is retried (default MinWindow;
	// tests shorten it).
	MinWindow time.Duration
}

// Entry is one periodic task.
type Entry struct {
	// Name identifies the entry across the fleet: it is part of each tick's
	// task ID, so it must be the same on every worker and unique in one.
	Name string
	// Spec is the cron spec.
	Spec string
	// Task is enqueued on each tick.
	Task *asynq.Task
	// Opts are its enqueue options. The scheduler sets the task ID and the
	// retention; a TaskID option is refused, and a Retention longer than
	// the scheduler's is kept.
	Opts []asynq.Option
}

// Status is what a Scheduler reports of one entry.
type Status struct {
	Name  string
	Spec  string
	Type  string
	Queue string
	// Options are the entry's enqueue options as asynq prints them
	// (Queue("default"), MaxRetry(3)...), without the per-tick ones.
	Options []string
	// Next is the next tick; zero when there is none, or before Start.
	Next time.Time
	// LastRun is the last tick known to be in Redis: enqueued by this
	// worker or, refused as a duplicate, by another. Zero before the first.
	LastRun time.Time
	// LastTick and LastResult are the last tick this worker handled and
	// how; LastError is its last failed attempt's error, when it failed.
	LastTick   time.Time
	LastResult string
	LastError  string
	// Counts counts the ticks by result.
	Counts map[string]uint64
}

// ErrTaskID is returned by Add for an entry that sets its own task ID.
var ErrTaskID = errors.New("the scheduler sets each tick's task ID; remove the TaskID option")

// Scheduler runs entries. Add them, then Start; Stop ends it.
type Scheduler struct {
	opts Options

	mu      sync.Mutex
	entries []*entry
	names   map[string]bool
	started bool
	stopped bool
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type entry struct {
	Entry
	spec      Spec
	queue     string
	retention time.Duration      // the entry's own asynq.Retention, if any
	cancel    context.CancelFunc // ends its loop and its ticks; nil before Start

	mu     sync.Mutex
	status Status
	missed int // ticks missed in a row
}

// New returns a Scheduler with no entries.
func New(opts Options) *Scheduler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 100 * time.Millisecond
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 5 * time.Second
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 5 * time.Second
	}
	if opts.MinWindow <= 0 {
		opts.MinWindow = MinWindow
	}
	return &Scheduler{opts: opts, names: map[string]bool{}}
}

// Add adds e. It fails when Check does, or on a name used before. An entry
// added after Start runs from the next tick on.
func (s *Scheduler) Add(e Entry) error {
	if err := Check(e.Spec, e.Task, e.Opts, s.opts.Now()); err != nil {
		return err
	}
	spec, _ := Parse(e.Spec)
	ent := &entry{Entry: e, spec: spec, queue: "default"}
	ent.Opts = slices.Clone(e.Opts)
	for _, o := range e.Opts {
		switch o.Type() {
		case asynq.QueueOpt:
			ent.queue, _ = o.Value().(string)
		case asynq.RetentionOpt:
			ent.retention, _ = o.Value().(time.Duration)
		}
	}
	ent.status = Status{Name: e.Name, Spec: e.Spec, Type: e.Task.Type(), Queue: ent.queue, Counts: map[string]uint64{}}
	for _, o := range e.Opts {
		ent.status.Options = append(ent.status.Options, o.String())
	}
	for _, r := range Results {
		ent.status.Counts[r] = 0
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.names[e.Name] {
		return fmt.Errorf("schedule %q is registered twice", e.Name)
	}
	s.names[e.Name] = true
	s.entries = append(s.entries, ent)
	if s.started && !s.stopped {
		s.run(ent)
	}
	return nil
}

// Remove removes the entry named name and reports whether there was one.
// Its loop ends, and a tick of it being retried is abandoned (another
// worker has it, or has it not either if the whole fleet removes the
// entry); Remove does not wait for them. The name may be added again.
func (s *Scheduler) Remove(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.entries, func(e *entry) bool { return e.Name == name })
	if i < 0 {
		return false
	}
	if c := s.entries[i].cancel; c != nil {
		c()
	}
	s.entries = slices.Delete(s.entries, i, i+1)
	delete(s.names, name)
	return true
}

// Check checks an entry before it is added: a spec that Parse accepts, a
// task with a type, no TaskID option (the scheduler sets each tick's), and
// a uniqueness TTL (asynq.Unique), if any, that CheckUnique accepts.
func Check(spec string, task *asynq.Task, opts []asynq.Option, now time.Time) error {
	sp, err := Parse(spec)
	if err != nil {
		return fmt.Errorf("spec %q: %w (expected %s)", spec, err, Form)
	}
	if task == nil || task.Type() == "" {
		return errors.New("a task with a type is required")
	}
	for _, o := range opts {
		switch o.Type() {
		case asynq.TaskIDOpt:
			return ErrTaskID
		case asynq.UniqueOpt:
			ttl, _ := o.Value().(time.Duration)
			if err := CheckUnique(sp, ttl, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckUnique checks a uniqueness TTL for spec: at least one second (asynq
// counts it in whole seconds) and shorter than the shortest gap between
// ticks after now.
func CheckUnique(spec Spec, ttl time.Duration, now time.Time) error {
	if ttl < time.Second {
		return fmt.Errorf("unique %s is less than 1s (asynq counts it in whole seconds)", ttl)
	}
	if gap := spec.MinGap(now); gap > 0 && ttl >= gap {
		return fmt.Errorf("unique %s is not shorter than the shortest gap between ticks of %q (%s): "+
			"a duplicate enqueue of one tick leaves the lock for its whole TTL (asynq v0.26.0), which would refuse the next tick", ttl, spec, gap)
	}
	return nil
}

// Start runs every entry, each in a goroutine of its own, until Stop. A
// second Start does nothing.
func (s *Scheduler) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return
	}
	s.started = true
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.ctx = ctx
	for _, e := range s.entries {
		s.run(e)
	}
}

// Stop stops every entry, abandoning a tick being retried, and waits for
// them. It may be called more than once, and before Start.
func (s *Scheduler) Stop() {
	s.mu.Lock()
	s.stopped = true
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.wg.Wait()
}

// Len is the number of entries.
func (s *Scheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// Status reports each entry, in the order they were added.
func (s *Scheduler) Status() []Status {
	s.mu.Lock()
	entries := slices.Clone(s.entries)
	s.mu.Unlock()
	out := make([]Status, 0, len(entries))
	for _, e := range entries {
		e.mu.Lock()
		st := e.status
		st.Options = slices.Clone(e.status.Options)
		st.Counts = make(map[string]uint64, len(e.status.Counts))
		for k, v := range e.status.Counts {
			st.Counts[k] = v
		}
		e.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// run starts e's loop; s.mu is held. The first tick is known when it
// returns (Status shows it).
func (s *Scheduler) run(e *entry) {
	ctx, cancel := context.WithCancel(s.ctx)
	e.cancel = cancel
	next := e.spec.Next(s.opts.Now())
	e.setNext(next)
	s.wg.Go(func() { s.loop(ctx, e, next) })
}

// loop waits for each tick of e and fires it in a goroutine of its own, so
// that a tick whose enqueue is being retried (Redis unreachable) does not
// hold back the next. Ticks whose window has passed (a process suspended
// that long) are skipped.
func (s *Scheduler) loop(ctx context.Context, e *entry, next time.Time) {
	for {
		if next.IsZero() {
			e.setNext(next)
			<-ctx.Done()
			return
		}
		e.setNext(next)
		if !s.sleepUntil(ctx, next) {
			return
		}
		tick, after := next, e.spec.Next(next)
		deadline := tick.Add(s.window(tick, after))
		if now := s.opts.Now(); !now.Before(deadline) {
			next = e.spec.Next(now) // asleep past the whole window
			continue
		}
		s.wg.Go(func() { s.fire(ctx, e, tick, deadline) })
		next = after
	}
}

// window is how long the enqueue of tick, followed by next (zero when there
// is none), is retried: until the next tick, but at least Options.MinWindow
// (MinWindow), so that a short outage or failover costs no tick, and at
// most MaxWindow.
func (s *Scheduler) window(tick, next time.Time) time.Duration {
	if next.IsZero() {
		return MaxWindow
	}
	return min(max(next.Sub(tick), s.opts.MinWindow), MaxWindow)
}

// sleepUntil waits until t on the scheduler's clock, or ctx ends (false).
func (s *Scheduler) sleepUntil(ctx context.Context, t time.Time) bool {
	for {
		d := t.Sub(s.opts.Now())
		if d <= 0 {
			return ctx.Err() == nil
		}
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-timer.C:
		}
	}
}

// fire enqueues the tick, retrying until it is in Redis or its window
// closes at deadline.
func (s *Scheduler) fire(ctx context.Context, e *entry, tick, deadline time.Time) {
	retention := max(deadline.Sub(tick)+SkewMargin, e.retention)
	opts := append(slices.Clone(e.Opts), asynq.TaskID(TickID(e.Name, tick)), asynq.Retention(retention))

	pause := s.opts.RetryMin
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, s.opts.AttemptTimeout)
		_, err := s.opts.Enqueue(actx, e.Task, opts...)
		cancel()
		result := ""
		switch {
		case err == nil:
			result = ResultEnqueued
		case errors.Is(err, asynq.ErrTaskIDConflict):
			result = ResultDuplicate
		case errors.Is(err, asynq.ErrDuplicateTask):
			result = ResultUnique
		}
		if result != "" {
			e.record(tick, result, nil)
			if n := e.missRun(false); n > 0 {
				s.opts.Logger.Info("schedule enqueues again", "component", "scheduler",
					"schedule", e.Name, "tick", tick, "missed_before", n)
			}
			return
		}
		if ctx.Err() != nil {
			return // stopping: another worker, or the next start, has the tick
		}
		wait := min(pause, deadline.Sub(s.opts.Now()))
		if wait <= 0 || !s.pause(ctx, wait, deadline) {
			if ctx.Err() != nil {
				return
			}
			e.record(tick, ResultMissed, err)
			if e.missRun(true) == 0 {
				s.opts.Logger.Warn("scheduled tick missed: its enqueue failed until its window closed; "+
					"later misses in a row are counted, not logged", "component", "scheduler",
					"schedule", e.Name, "tick", tick, "attempts", attempt, "error", err)
			}
			return
		}
		pause = min(2*pause, s.opts.RetryMax)
	}
}

// pause sleeps d, then waits for Redis to be ready until deadline. It
// returns false when ctx ends or the deadline passes first.
func (s *Scheduler) pause(ctx context.Context, d time.Duration, deadline time.Time) bool {
	if !s.sleepUntil(ctx, s.opts.Now().Add(d)) {
		return false
	}
	if s.opts.Wait == nil {
		return s.opts.Now().Before(deadline)
	}
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return s.opts.Wait(wctx)
}

// TickID is the task ID of entry name's tick: the same on every worker.
func TickID(name string, tick time.Time) string {
	return name + "@" + tick.UTC().Format(time.RFC3339)
}

func (e *entry) setNext(t time.Time) {
	e.mu.Lock()
	e.status.Next = t
	e.mu.Unlock()
}

func (e *entry) record(tick time.Time, result string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !tick.Before(e.status.LastTick) { // ticks retried at once may end out of order
		e.status.LastTick, e.status.LastResult, e.status.LastError = tick, result, ""
		if err != nil {
			e.status.LastError = err.Error()
		}
	}
	if (result == ResultEnqueued || result == ResultDuplicate) && tick.After(e.status.LastRun) {
		e.status.LastRun = tick
	}
	e.status.Counts[result]++
}

// missRun counts the ticks missed in a row: the first of a run is logged,
// and the end of the run, not every one.
func (e *entry) missRun(missed bool) (before int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	before = e.missed
	if missed {
		e.missed++
	} else {
		e.missed = 0
	}
	return before
}
