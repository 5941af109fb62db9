package chaostest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// recordKey is the chaos plugin's list of executions (chaosworker.RecordKey).
const recordKey = "chaos:exec"

// attempt is one execution of a chaos:record task, as the plugin recorded
// it: its start, and its finish unless it was cut short.
type attempt struct {
	id         string
	pid        int
	retry      int
	pad        int
	start, end time.Time // end is zero for an execution that never finished
}

func (a attempt) finished() bool { return !a.end.IsZero() }

// note is one line of the plugin's record.
type note struct {
	kind  string // "S" start, "F" finish
	id    string
	pid   int
	at    time.Time
	retry int
	pad   int
}

func parseNote(s string) (note, error) {
	f := strings.Fields(s)
	if len(f) != 6 || (f[0] != "S" && f[0] != "F") {
		return note{}, fmt.Errorf("record %q: want S|F and 5 fields", s)
	}
	n := note{kind: f[0], id: f[1]}
	var ns int64
	var err error
	if n.pid, err = strconv.Atoi(f[2]); err == nil {
		if ns, err = strconv.ParseInt(f[3], 10, 64); err == nil {
			if n.retry, err = strconv.Atoi(f[4]); err == nil {
				n.pad, err = strconv.Atoi(f[5])
			}
		}
	}
	if err != nil {
		return note{}, fmt.Errorf("record %q: %w", s, err)
	}
	n.at = time.Unix(0, ns)
	return n, nil
}

// recorder reads the executions from the recorder Redis as they arrive.
type recorder struct {
	rdb   *redis.Client
	read  int64
	byID  map[string][]*attempt // task ID -> its attempts, in order of start
	count int                   // attempts of all tasks
}

func newRecorder(addr string) *recorder {
	return &recorder{rdb: redis.NewClient(&redis.Options{Addr: addr}), byID: map[string][]*attempt{}}
}

// poll reads the notes recorded since the last poll.
func (r *recorder) poll(ctx context.Context) error {
	for {
		vals, err := r.rdb.LRange(ctx, recordKey, r.read, r.read+9999).Result()
		if err != nil {
			return fmt.Errorf("recorder: %w", err)
		}
		for _, v := range vals {
			n, err := parseNote(v)
			if err != nil {
				return err
			}
			r.add(n)
		}
		r.read += int64(len(vals))
		if len(vals) < 10000 {
			return nil
		}
	}
}

func (r *recorder) add(n note) {
	if n.kind == "S" {
		r.byID[n.id] = append(r.byID[n.id], &attempt{id: n.id, pid: n.pid, retry: n.retry, pad: n.pad, start: n.at})
		r.count++
		return
	}
	as := r.byID[n.id]
	for i := len(as) - 1; i >= 0; i-- {
		if a := as[i]; a.pid == n.pid && a.retry == n.retry && !a.finished() {
			a.end = n.at
			return
		}
	}
}

// executed reports how many of ids finished an execution at least once.
func (r *recorder) executed(ids []string) int {
	n := 0
	for _, id := range ids {
		if r.done(id) {
			n++
		}
	}
	return n
}

func (r *recorder) done(id string) bool {
	for _, a := range r.byID[id] {
		if a.finished() {
			return true
		}
	}
	return false
}

// missing lists up to max of ids that never finished an execution.
func (r *recorder) missing(ids []string, max int) []string {
	var out []string
	for _, id := range ids {
		if !r.done(id) && len(out) < max {
			out = append(out, id)
		}
	}
	return out
}

// duplicate is an execution of a task after its first.
type duplicate struct {
	prev, dup *attempt
	cause     string
}

// evidence is what attribute weighs besides the two executions.
type evidence struct {
	faults  []fault
	work    time.Duration   // the plugin's work per execution
	held    map[string]bool // task IDs the producer's outbox held
	resumed []string        // the first task ID of each restarted producer
}

// duplicates returns every execution after a task's first, each with the
// execution before it and its cause.
func (r *recorder) duplicates(ev evidence) []duplicate {
	var out []duplicate
	for _, as := range r.byID {
		for k := 1; k < len(as); k++ {
			out = append(out, duplicate{prev: as[k-1], dup: as[k], cause: attribute(*as[k-1], *as[k], ev)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].dup.start.Before(out[j].dup.start) })
	return out
}

// Fault kinds.
const (
	faultRedisKill    = "redis SIGKILL"
	faultWorkerKill   = "worker SIGKILL"
	faultWorkerTerm   = "worker SIGTERM"
	faultProducerKill = "producer SIGKILL"
)

// fault is one injected failure: when it hit and when its target was back.
type fault struct {
	kind    string
	target  string
	pid     int // the process killed
	at, end time.Time
}

// Causes of a duplicate execution.
const (
	causeWorkerKill     = "worker SIGKILL while the task ran: the recoverer retried it once its lease expired"
	causeWorkerKillAck  = "worker SIGKILL after the task finished but before asynq acknowledged it: the recoverer retried it once its lease expired"
	causeRedisKill      = "redis SIGKILL: the completion ack failed in the outage and asynq's syncer did not redo it; the recoverer retried the task once its lease expired"
	causeKillPendingAck = "worker SIGKILL during a redis outage, or within ackLanding of its end, with the completion ack that failed in the outage not yet redone; the recoverer retried the task once its lease expired"
	causeRedisKillLease = "redis SIGKILL, outage longer than the lease: the completion ack failed and the lease expired; the recoverer retried the task"
	causeWorkerTerm     = "worker SIGTERM: the task was requeued at shutdown"
	causeOutboxReplay   = "outbox replay after the task had completed: Redis had taken the enqueue but its reply was lost to the kill, so the outbox held the task too (or the producer crashed before deleting a delivered task from its file), and asynq had deleted the completed task, so its ID no longer refused the replay"
	causeResubmit       = "resubmitted by the restarted producer after it had completed"
	causeReenqueued     = "re-enqueued after it completed, by neither the outbox nor a producer restart"
	causeUnknown        = "unattributed"
)

// ackMargin is how long asynq's acknowledgement may trail a finish on a
// loaded machine: a finish this long before a fault may still have lost its
// acknowledgement to it.
const ackMargin = time.Second

// ackLanding is how long after a Redis outage's end the acknowledgements
// that failed in it may take to land: go-redis' pool, after PoolSize failed
// dials, redials once a second in the background, and taskhost retries a
// failed acknowledgement every 250 ms (recoverer.go). A worker killed within
// it may take them along.
const ackLanding = 2 * time.Second

// attribute names the likely cause of dup, the execution after prev of the
// same task. A retry (a higher retry count) means asynq never saw prev
// complete: prev was cut short by a killed worker, or it finished but its
// acknowledgement was lost to a dead worker or a dead Redis. A fresh
// enqueue (the same count) means the task ID was enqueued again after prev
// completed and asynq had deleted it.
func attribute(prev, dup attempt, ev evidence) string {
	faults, work := ev.faults, ev.work
	if dup.retry > prev.retry {
		if prev.finished() {
			for _, f := range faults {
				if f.kind == faultRedisKill && !prev.end.Before(f.at.Add(-ackMargin)) && !prev.end.After(f.end) {
					if f.end.Sub(f.at) > lease {
						return causeRedisKillLease
					}
					for _, w := range faults {
						if w.kind == faultWorkerKill && w.pid == prev.pid && !w.at.Before(prev.end) && !w.at.After(f.end.Add(ackLanding)) {
							return causeKillPendingAck
						}
					}
					return causeRedisKill
				}
			}
			for _, f := range faults {
				if f.kind == faultWorkerKill && f.pid == prev.pid && !prev.end.Before(f.at.Add(-ackMargin)) && !prev.end.After(f.at) {
					return causeWorkerKillAck
				}
			}
		} else {
			for _, f := range faults {
				if f.kind == faultWorkerKill && f.pid == prev.pid && !prev.start.Before(f.at.Add(-work-ackMargin)) && !prev.start.After(f.at) {
					return causeWorkerKill
				}
			}
		}
	}
	for _, f := range faults {
		if f.kind == faultWorkerTerm && f.pid == prev.pid && !prev.start.Before(f.at.Add(-ackMargin)) && !prev.start.After(f.end) {
			return causeWorkerTerm
		}
	}
	if dup.retry <= prev.retry {
		switch {
		case slices.Contains(ev.resumed, dup.id):
			return causeResubmit
		case ev.held[dup.id]:
			return causeOutboxReplay
		}
		return causeReenqueued
	}
	return causeUnknown
}
