package taskhost

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/health"
	"github.com/taskhost/taskhost/internal/metrics"
)

// What /healthz and /metrics say about the fleet and its periodic tasks.

// RolePeer is every taskhost worker's role: each runs the scheduler (whose
// tick IDs make one enqueue per tick count, docs/scaling.md) and recovers
// expired leases; none leads, so none has to be elected or replaced.
const RolePeer = "peer"

// asynq v0.26.0 keeps its live servers in the sorted set asynq:servers,
// members asynq:servers:{<host>:<pid>:<server id>} scored by the expiry of
// their heartbeat (internal/base ServerInfoKey). TestFleetCountsProcesses
// checks the form against asynq's Inspector.
const (
	serversKey    = "asynq:servers"
	serverKeyHead = "asynq:servers:{"
)

// fleetWorkers counts the live asynq servers on rdb and the processes they
// belong to, with one read (asynq's Inspector.Servers reads every server's
// record too).
func fleetWorkers(ctx context.Context, rdb redis.UniversalClient) (processes, servers int, err error) {
	keys, err := rdb.ZRangeByScore(ctx, serversKey, &redis.ZRangeBy{
		Min: strconv.FormatInt(time.Now().Unix(), 10), Max: "+inf",
	}).Result()
	if err != nil {
		return 0, 0, err
	}
	procs := map[string]bool{}
	for _, k := range keys {
		id, ok := strings.CutPrefix(k, serverKeyHead)
		id, ok2 := strings.CutSuffix(id, "}")
		if !ok || !ok2 {
			continue
		}
		servers++
		// <host>:<pid>:<uuid>: the host may hold ":" (IPv6), the rest not.
		if i := strings.LastIndex(id, ":"); i > 0 {
			procs[id[:i]] = true
		}
	}
	return len(procs), servers, nil
}

// fleet is the report's fleet section.
func (r *Runtime) fleet(ctx context.Context) (health.Fleet, error) {
	procs, servers, err := fleetWorkers(ctx, r.qrdb)
	if err != nil {
		return health.Fleet{}, err
	}
	return health.Fleet{Role: RolePeer, Workers: procs, Servers: servers}, nil
}

// schedules is the report's schedules section, from memory.
func (r *Runtime) schedules(context.Context) ([]health.Schedule, error) {
	var out []health.Schedule
	for _, s := range r.queue.scheduler.Status() {
		out = append(out, health.Schedule{
			Name: s.Name, Spec: s.Spec, Type: s.Type, Queue: s.Queue,
			NextRun: timePtr(s.Next), LastRun: timePtr(s.LastRun),
			LastResult: s.LastResult, LastError: s.LastError, Ticks: s.Counts,
		})
	}
	return out, nil
}

// scheduleStats is what the schedule metrics read.
func (r *Runtime) scheduleStats() []metrics.ScheduleStat {
	var out []metrics.ScheduleStat
	for _, s := range r.queue.scheduler.Status() {
		out = append(out, metrics.ScheduleStat{Name: s.Name, Next: unixSeconds(s.Next), LastRun: unixSeconds(s.LastRun), Ticks: s.Counts})
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.Unix())
}
