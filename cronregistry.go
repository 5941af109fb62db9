package taskhost

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/taskhost/taskhost/internal/schedule"
)

// cronRegistry publishes the scheduler's entries where asynq's tools look
// for a scheduler's, so that `asynq cron ls`, the dashboard's Schedulers page
// and Inspector.SchedulerEntries list them as they listed asynq's own
// scheduler's: every cronInterval it writes this worker's entries to the
// list asynq:schedulers:{<id>} (expiring after two intervals) and registers
// the list in the sorted set asynq:schedulers, as asynq v0.26.0's Scheduler
// does (internal/rdb WriteSchedulerEntries), in asynq's protobuf encoding
// (internal/proto SchedulerEntry). Each worker registers its own, so a
// fleet of N shows each entry N times: every worker is a scheduler peer.
// Payloads are not published: a schedules payload may hold a secret.
//
// Each tick this worker enqueued is recorded in the entry's history,
// asynq:scheduler_history:<entry name>, shared by the fleet, so the
// dashboard's history of an entry shows each tick once.
// TestCronRegistryReadByAsynq checks all of it through asynq's Inspector.
type cronRegistry struct {
	rdb     redis.UniversalClient
	key     string // asynq:schedulers:{<id>}
	entries func() []schedule.Status
	log     *slog.Logger

	mu      sync.Mutex
	started bool
	stopped bool
	stop    chan struct{}
	done    chan struct{}
}

// cronInterval is how often the registry writes; asynq's scheduler's
// default heartbeat.
const cronInterval = 10 * time.Second

// Keys of asynq v0.26.0's scheduler records (internal/base).
const (
	allSchedulersKey      = "asynq:schedulers"
	schedulerHistoryKey   = "asynq:scheduler_history:"
	maxSchedulerHistories = 1000 // asynq's maxEvents
)

func newCronRegistry(rdb redis.UniversalClient, entries func() []schedule.Status, log *slog.Logger) *cronRegistry {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	id := fmt.Sprintf("%s:%d:%s", host, os.Getpid(), uuid.NewString())
	return &cronRegistry{rdb: rdb, key: "asynq:schedulers:{" + id + "}", entries: entries, log: log,
		stop: make(chan struct{}), done: make(chan struct{})}
}

// start writes at once, then every cronInterval, until shutdown. A second
// start, or one after shutdown, does nothing.
func (c *cronRegistry) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || c.stopped {
		return
	}
	c.started = true
	go func() {
		defer close(c.done)
		t := time.NewTicker(cronInterval)
		defer t.Stop()
		for {
			c.write()
			select {
			case <-c.stop:
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_ = c.rdb.ZRem(ctx, allSchedulersKey, c.key).Err()
				_ = c.rdb.Del(ctx, c.key).Err()
				return
			case <-t.C:
			}
		}
	}()
}

// shutdown stops the writes and removes this worker's list; it may be
// called more than once, and without start.
func (c *cronRegistry) shutdown() {
	c.mu.Lock()
	started, stopped := c.started, c.stopped
	c.stopped = true
	c.mu.Unlock()
	if !stopped {
		close(c.stop)
	}
	if started {
		<-c.done
	}
}

// write publishes the entries; a failure (Redis down) waits for the next
// round, silently: the list expires and returns with Redis.
func (c *cronRegistry) write() {
	sts := c.entries()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if len(sts) == 0 { // a reload removed the last entry
		_ = c.rdb.ZRem(ctx, allSchedulersKey, c.key).Err()
		_ = c.rdb.Del(ctx, c.key).Err()
		return
	}
	ttl := 2 * cronInterval
	if err := c.rdb.ZAdd(ctx, allSchedulersKey, redis.Z{Score: float64(time.Now().Add(ttl).Unix()), Member: c.key}).Err(); err != nil {
		return
	}
	encoded := make([]any, 0, len(sts))
	for _, st := range sts {
		encoded = append(encoded, encodeSchedulerEntry(st))
	}
	_, _ = c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, c.key)
		p.LPush(ctx, c.key, encoded...)
		p.Expire(ctx, c.key, ttl)
		return nil
	})
}

// recordEnqueues wraps enqueue to record each tick this worker enqueued in
// its entry's history. The entry is the task ID's part before "@".
func recordEnqueues(rdb redis.UniversalClient, enqueue schedule.Enqueuer) schedule.Enqueuer {
	return func(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
		info, err := enqueue(ctx, task, opts...)
		if err != nil || info == nil {
			return info, err
		}
		if name, _, ok := strings.Cut(info.ID, "@"); ok {
			now := time.Now()
			key := schedulerHistoryKey + name
			_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.ZRemRangeByRank(ctx, key, 0, -maxSchedulerHistories)
				p.ZAdd(ctx, key, redis.Z{Score: float64(now.Unix()), Member: encodeEnqueueEvent(info.ID, now)})
				return nil
			})
		}
		return info, nil
	}
}

// encodeSchedulerEntry encodes st as asynq's SchedulerEntry message: id 1,
// spec 2, task_type 3, task_payload 4 (left out), enqueue_options 5,
// next_enqueue_time 6 and prev_enqueue_time 7 (google.protobuf.Timestamp).
func encodeSchedulerEntry(st schedule.Status) []byte {
	var b []byte
	b = appendString(b, 1, st.Name)
	b = appendString(b, 2, st.Spec)
	b = appendString(b, 3, st.Type)
	for _, o := range st.Options {
		b = appendString(b, 5, o)
	}
	b = appendTimestamp(b, 6, st.Next)
	b = appendTimestamp(b, 7, st.LastRun)
	return b
}

// encodeEnqueueEvent encodes asynq's SchedulerEnqueueEvent: task_id 1,
// enqueue_time 2.
func encodeEnqueueEvent(taskID string, at time.Time) []byte {
	return appendTimestamp(appendString(nil, 1, taskID), 2, at)
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendTimestamp appends a google.protobuf.Timestamp (seconds 1, nanos 2);
// a zero time is left out, which asynq reads as the Unix epoch, as it does
// for its own never-run entries.
func appendTimestamp(b []byte, field protowire.Number, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	var ts []byte
	ts = protowire.AppendTag(ts, 1, protowire.VarintType)
	ts = protowire.AppendVarint(ts, uint64(t.Unix()))
	if n := t.Nanosecond(); n != 0 {
		ts = protowire.AppendTag(ts, 2, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(n))
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, ts)
}
