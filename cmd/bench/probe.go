package main

import (
	"context"
	"encoding/binary"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
)

// taskType is the no-op task both sides handle; queueName is their queue.
const (
	taskType  = "bench:noop"
	queueName = "default"
)

// stamp is a task payload: the enqueue time in Unix nanoseconds. Parent and
// child read the same wall clock.
func stamp(t time.Time) []byte { return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano())) }

func unstamp(b []byte) (int64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b)), true
}

func newTask(now time.Time) *asynq.Task { return asynq.NewTask(taskType, stamp(now)) }

// probe is the no-op handler of both sides. It notes the first and the n-th
// task's start with the process's CPU time, and with record set each task's
// start latency; done closes once n tasks have run.
type probe struct {
	n        int64
	lat      []int64 // nanoseconds from enqueue to start; nil unless recording
	started  atomic.Int64
	finished atomic.Int64
	firstNs  atomic.Int64
	lastNs   atomic.Int64
	cpuFirst atomic.Int64 // nanoseconds of CPU
	cpuLast  atomic.Int64
	done     chan struct{}
}

func newProbe(n int, record bool) *probe {
	p := &probe{n: int64(n), done: make(chan struct{})}
	if record {
		p.lat = make([]int64, n)
	}
	return p
}

// ProcessTask does nothing beyond the probe's bookkeeping.
func (p *probe) ProcessTask(_ context.Context, t *asynq.Task) error {
	now := time.Now().UnixNano()
	i := p.started.Add(1)
	if i == 1 {
		p.firstNs.Store(now)
		p.cpuFirst.Store(int64(selfCPU()))
	}
	if p.lat != nil && i <= p.n {
		if ts, ok := unstamp(t.Payload()); ok {
			p.lat[i-1] = now - ts
		}
	}
	if i == p.n {
		p.lastNs.Store(now)
		p.cpuLast.Store(int64(selfCPU()))
	}
	// The n-th handler to finish closes done: every write above for the
	// first n tasks happens before it.
	if p.finished.Add(1) == p.n {
		close(p.done)
	}
	return nil
}

// report is the "done" event; call it after done is closed.
func (p *probe) report() event {
	e := event{
		Event:    "done",
		Tasks:    p.started.Load(),
		FirstNs:  p.firstNs.Load(),
		LastNs:   p.lastNs.Load(),
		CPUFirst: time.Duration(p.cpuFirst.Load()).Seconds(),
		CPULast:  time.Duration(p.cpuLast.Load()).Seconds(),
	}
	if len(p.lat) > 0 {
		s := slices.Clone(p.lat)
		slices.Sort(s)
		e.P50ms = ms(percentile(s, 0.50))
		e.P99ms = ms(percentile(s, 0.99))
		e.MaxMs = ms(s[len(s)-1])
	}
	return e
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []int64, q float64) int64 {
	i := int(math.Ceil(float64(len(sorted))*q)) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

var _ asynq.Handler = (*probe)(nil)
