package outbox

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/taskhost/taskhost/internal/tracing"
)

// Drain tuning: how many tasks one round takes from the outbox, and how
// long acknowledged tasks may wait before their deletion is written. A crash
// replays at most these; asynq refuses the replays by task ID.
const (
	drainChunk      = 64
	deleteFlushWait = 100 * time.Millisecond
)

// drainState is the drain loop's own bookkeeping for its log lines.
type drainState struct {
	active    bool // a drain spell is under way
	started   time.Time
	delivered int // taken by Redis in this spell
	present   int // already in Redis (replays) in this spell
	paused    bool
}

// loop runs until Close, draining on Kick and every CheckInterval.
func (c *Client) loop() {
	defer close(c.loopDone)
	t := time.NewTicker(c.opts.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.kick:
		case <-t.C:
		}
		c.drainOnce(c.ctx)
	}
}

// drainOnce delivers held tasks in order until the outbox is empty, Redis
// is not ready, a delivery fails, or ctx is done.
func (c *Client) drainOnce(ctx context.Context) {
	for ctx.Err() == nil && c.ready() {
		c.mu.Lock()
		batch := c.q.peek(drainChunk)
		held := c.q.len()
		c.mu.Unlock()
		if len(batch) == 0 {
			c.finishSpell()
			return
		}
		if !c.drain.active {
			c.drain = drainState{active: true, started: time.Now()}
			c.log.Info("outbox drain started", "tasks", held)
		}
		if err := c.deliverBatch(ctx, batch); err != nil {
			if ctx.Err() == nil && !c.drain.paused {
				c.drain.paused = true
				n, _ := c.Depth()
				level := slog.LevelWarn
				if errors.Is(err, errNotReady) {
					level = slog.LevelInfo
				}
				c.log.Log(ctx, level, "outbox drain paused; it retries at each check while Redis is ready", "error", err.Error(),
					"delivered", c.drain.delivered, "remaining", n)
			}
			return
		}
	}
}

// deliverBatch enqueues batch in order, removing each task from memory when
// Redis acknowledges it and from the store in groups.
func (c *Client) deliverBatch(ctx context.Context, batch []*entry) error {
	acked := make([]uint64, 0, len(batch))
	lastFlush := time.Now()
	defer func() { c.deleteStored(acked) }()
	for _, e := range batch {
		if err := c.lim.Wait(ctx); err != nil {
			return err
		}
		if !c.ready() {
			return errNotReady
		}
		present, err := c.deliver(ctx, e)
		if err != nil {
			return err
		}
		if present {
			c.drain.present++
		} else {
			c.drain.delivered++
		}
		c.mu.Lock()
		c.q.pop()
		if c.ids[e.id]--; c.ids[e.id] <= 0 {
			delete(c.ids, e.id)
		}
		c.bytes -= int64(len(e.data))
		c.mu.Unlock()
		acked = append(acked, e.seq)
		if time.Since(lastFlush) >= deleteFlushWait {
			c.deleteStored(acked)
			acked, lastFlush = acked[:0], time.Now()
		}
	}
	return nil
}

// deliver enqueues one held task. present is true when Redis already had
// it: its ID or its uniqueness lock exists, so an earlier delivery took.
func (c *Client) deliver(ctx context.Context, e *entry) (present bool, err error) {
	s, err := decode(e.data)
	if err != nil {
		return false, err // cannot happen: the entry was decoded when stored
	}
	task, opts := s.task()
	if c.tracer != nil {
		var span trace.Span
		ctx, span = c.tracer.StartReplay(ctx, s.Type, s.Queue, s.ID, s.Headers)
		defer func() { tracing.EndSend(span, s.ID, false, err) }()
	}
	_, err = c.inner.EnqueueContext(ctx, task, opts...)
	if delivered(err) {
		return true, nil
	}
	return false, err
}

// deleteStored removes acknowledged tasks from the store. A failure leaves
// them to be replayed, harmlessly, after a restart.
func (c *Client) deleteStored(seqs []uint64) {
	if len(seqs) == 0 {
		return
	}
	if err := c.store.Delete(seqs...); err != nil {
		c.log.Error("outbox could not delete delivered tasks from its store; they will be replayed after a restart",
			"tasks", len(seqs), "error", err.Error())
	}
}

// finishSpell logs the end of a drain and resets the holding state.
func (c *Client) finishSpell() {
	c.mu.Lock()
	empty := c.q.len() == 0 && c.resTasks == 0
	if empty {
		c.holding, c.fullLog = false, false
	}
	c.mu.Unlock()
	if c.drain.active && empty {
		c.log.Info("outbox drain finished", "delivered", c.drain.delivered,
			"already_in_redis", c.drain.present, "took", time.Since(c.drain.started).Round(time.Millisecond))
		c.drain = drainState{}
	}
}
