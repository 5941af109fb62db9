package redisconn

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/connerr"
)

// restartState is guarded by Monitor.mu.
type restartState struct {
	runID    string    // run_id seen at the last successful check
	at       time.Time // last empty restart detected
	count    uint64
	disabled bool // the server refused INFO/EXISTS/SET (e.g. ACL); warned once
}

// EmptyRestart returns when Redis was last seen to come back empty (a new
// run_id and the marker key gone), for the health report. ok is false if it
// never happened in this process.
func (m *Monitor) EmptyRestart() (at time.Time, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.restart.at, m.restart.count > 0
}

// EmptyRestarts returns how many empty restarts were detected.
func (m *Monitor) EmptyRestarts() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.restart.count
}

// markerNode is where the marker key lives. In cluster mode it is the master
// that owns the key's slot: only a restart of that node is detected, since
// run_id is per node.
func (m *Monitor) markerNode(ctx context.Context) (redis.Cmdable, error) {
	if cc, ok := m.client.(*redis.ClusterClient); ok {
		return cc.MasterForKey(ctx, m.opts.MarkerKey)
	}
	return m.client, nil
}

// checkRestart runs on every successful probe (so also on each transition to
// Ready, before it is published). When the marker key is missing and run_id
// changed since the last check, Redis restarted without its data: queued
// tasks are gone. The marker is then set again. A FLUSHALL (same run_id) or a
// restart that kept its data (marker present) is not reported.
func (m *Monitor) checkRestart(ctx context.Context) error {
	m.mu.Lock()
	disabled := m.restart.disabled
	m.mu.Unlock()
	if disabled {
		return nil
	}
	node, err := m.markerNode(ctx)
	if err != nil {
		return err
	}
	var exists *redis.IntCmd
	var info *redis.StringCmd
	if _, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
		exists = p.Exists(ctx, m.opts.MarkerKey)
		info = p.Info(ctx, "server")
		return nil
	}); err != nil {
		return m.checkFailed(err)
	}
	runID := ParseInfo(info.Val())["run_id"]
	if exists.Val() == 1 {
		m.mu.Lock()
		m.restart.runID = runID
		m.mu.Unlock()
		return nil
	}

	m.mu.Lock()
	prev := m.restart.runID
	m.restart.runID = runID
	empty := prev != "" && runID != "" && runID != prev
	if empty {
		m.restart.at = time.Now()
		m.restart.count++
	}
	m.mu.Unlock()
	if empty {
		m.log.Error("redis restarted empty: tasks queued before the restart are gone; enable AOF persistence",
			"previous_run_id", prev, "run_id", runID, "marker", m.opts.MarkerKey)
	}
	value := time.Now().UTC().Format(time.RFC3339)
	if err := node.SetNX(ctx, m.opts.MarkerKey, value, 0).Err(); err != nil {
		return m.checkFailed(err)
	}
	return nil
}

// checkFailed turns a failed check into a probe failure when Redis cannot
// serve for now (connerr.Down: unreachable, LOADING, MASTERDOWN...); a server
// refusal that will not pass (an ACL, or READONLY: the target is a replica,
// where the marker cannot be written) disables the check instead.
func (m *Monitor) checkFailed(err error) error {
	var rerr redis.Error
	if !errors.As(err, &rerr) || (connerr.Down(err) && !redis.IsReadOnlyError(err)) {
		return err
	}
	m.mu.Lock()
	m.restart.disabled = true
	m.mu.Unlock()
	m.log.Warn("cannot detect a redis that restarted empty: the server refused the check", "reason", err.Error())
	return nil
}
