package redisconn

import (
	"context"
	"time"

	"github.com/taskhost/taskhost/internal/connerr"
)

// minNudgeGap spaces probes triggered by the hook, so a stream of failing
// commands against a Redis that still answers PING cannot turn into a stream
// of probes.
const minNudgeGap = 100 * time.Millisecond

// recoverSettle delays the probe after the hook saw a success while not
// ready. go-redis' background dial probe resets its dial-error counter just
// after its dial returns through the hook; probing at once could still hit
// the counter and fail fast.
const recoverSettle = 50 * time.Millisecond

// nudge asks for a probe now; it never blocks.
func (m *Monitor) nudge() { poke(m.nudges) }

// nudgeRecovered tells a monitor that is not ready that a call got through.
func (m *Monitor) nudgeRecovered() { poke(m.recovered) }

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func drain(ch chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

func (m *Monitor) run() {
	defer close(m.done)
	for {
		err := m.probe()
		m.lastProbe = time.Now()
		drain(m.nudges) // raised by this probe itself, or stale
		drain(m.recovered)
		if m.ctx.Err() != nil {
			return
		}
		if err == nil {
			m.onSuccess(m.lastProbe)
			if !m.sleep(m.opts.PingInterval, true) {
				return
			}
			continue
		}
		if !m.sleep(m.onFailure(m.lastProbe, err), false) {
			return
		}
	}
}

// sleep waits d, or less when the hook reports a failed call (while ready)
// or a successful one (while not ready); false means stop.
func (m *Monitor) sleep(d time.Duration, ready bool) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	wake, settle := m.recovered, recoverSettle
	if ready {
		wake, settle = m.nudges, 0
	}
	select {
	case <-m.stop:
		return false
	case <-t.C:
		return true
	case <-wake:
	}
	if pause := max(settle, minNudgeGap-time.Since(m.lastProbe)); pause > 0 {
		t.Reset(pause)
		select {
		case <-m.stop:
			return false
		case <-t.C:
		}
	}
	return true
}

// restartCheckEvery spaces the empty-restart check (EXISTS and INFO) while
// ready: it runs on every probe that may turn the state to ready, and on
// every 5th probe after that, which catches a restart too quick to be seen
// as an outage within about 5 s, at 0.4 commands per second instead of 2.
const restartCheckEvery = 5

func (m *Monitor) probe() error {
	ctx, cancel := context.WithTimeout(m.ctx, m.opts.ProbeTimeout)
	defer cancel()
	if err := m.client.Ping(ctx).Err(); err != nil {
		return err
	}
	m.probes++ // only the monitor's goroutine probes
	if m.opts.NoRestartCheck || (m.State() == Ready && m.probes%restartCheckEvery != 0) {
		return nil
	}
	return m.checkRestart(ctx)
}

func (m *Monitor) onSuccess(now time.Time) {
	m.backoff = 0
	if m.State() != Ready {
		var extra []any
		if !m.failSince.IsZero() {
			extra = append(extra, "outage", now.Sub(m.failSince).Round(time.Millisecond).String())
		}
		m.setState(Ready, "ping ok", extra...)
	}
	m.failSince = time.Time{}
	m.lastReason = ""
	m.problem, m.toldProblem = "", ""
}

// onFailure updates the state after a failed probe and returns the delay
// before the next one.
func (m *Monitor) onFailure(now time.Time, err error) time.Duration {
	reason := err.Error()
	if m.failSince.IsZero() {
		m.failSince = now
	}
	failing := now.Sub(m.failSince)
	m.problem = connerr.Misconfigured(err)
	switch st := m.State(); {
	case st == Ready:
		m.setState(Reconnecting, reason)
	case (st == Connecting || st == Reconnecting) && failing >= m.opts.DownAfter:
		m.setState(Down, reason, "failing_for", failing.Round(time.Millisecond).String())
	case m.problem != "" && m.problem != m.toldProblem:
		// A refusal that began during an outage: said once, as what it is.
		m.toldProblem = m.problem
		m.log.Error(connerr.MisconfiguredHint(m.problem), "state", st.String(), "problem", m.problem, "reason", reason)
	case reason != m.lastReason:
		m.log.Debug("redis still unavailable", "state", st.String(), "reason", reason)
	}
	m.lastReason = reason

	// The backoff runs BackoffMin, 2×, 4×, … BackoffMax. Before Down, a step
	// is cut short to probe when DownAfter is reached, and then not counted.
	next := m.opts.BackoffMin
	if m.backoff > 0 {
		next = min(2*m.backoff, m.opts.BackoffMax)
	}
	if m.State() != Down {
		if left := m.opts.DownAfter - failing; left > 0 && left < next {
			return left
		}
	}
	m.backoff = next
	return next
}
