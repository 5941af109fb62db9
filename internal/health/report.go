package health

import (
	"fmt"
	"time"
)

// Status is the overall health in a Report.
type Status string

// The overall statuses; see docs/health.md for the rules.
const (
	StatusOK       Status = "ok"
	StatusDegraded Status = "degraded"
	StatusDown     Status = "down"
)

// Detail selects how much a report says.
type Detail string

// The detail levels.
const (
	// DetailFull includes Redis, queue and error detail.
	DetailFull Detail = "full"
	// DetailMinimal leaves out the redis and queues sections, the connection
	// target and last error, and every error message, for public listeners.
	DetailMinimal Detail = "minimal"
)

// ParseDetail parses "full" or "minimal"; "" means DetailFull.
func ParseDetail(s string) (Detail, error) {
	switch Detail(s) {
	case "", DetailFull:
		return DetailFull, nil
	case DetailMinimal:
		return DetailMinimal, nil
	}
	return "", fmt.Errorf("healthcheck: detail %q: want full or minimal", s)
}

// Report is the body of /healthz.
type Report struct {
	// Status is ok, degraded or down.
	Status Status `json:"status"`
	// Reasons says, one line each, why Status is not ok.
	Reasons []string `json:"reasons"`
	// Warnings are facts an operator must see that do not change Status.
	Warnings []string `json:"warnings"`
	// Ready is what /readyz answers, with its reason when false.
	Ready       bool   `json:"ready"`
	ReadyReason string `json:"ready_reason,omitempty"`
	// Version of taskhost, and its uptime.
	Version       string    `json:"version"`
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	// CheckedAt is when this report was made, and DurationMS how long it took.
	// Reports are not cached: every request runs the checks (concurrent
	// requests share a check that is still running).
	CheckedAt  time.Time `json:"checked_at"`
	DurationMS float64   `json:"duration_ms"`
	// Detail is full or minimal.
	Detail     Detail      `json:"detail"`
	Connection *Connection `json:"connection,omitempty"`
	// Redis is left out at DetailMinimal, or when its sources failed.
	Redis *RedisReport `json:"redis,omitempty"`
	// Queues is left out at DetailMinimal, or when its source failed.
	Queues    []Queue    `json:"queues,omitempty"`
	Fallbacks []Fallback `json:"fallbacks"`
	// Fleet is left out at DetailMinimal, or when its source failed.
	Fleet *Fleet `json:"fleet,omitempty"`
	// Schedules are the periodic tasks; absent when there are none.
	Schedules []Schedule `json:"schedules,omitempty"`
	// Config is the running configuration's generation; omitted when the
	// runtime gave none.
	Config *ConfigInfo   `json:"config,omitempty"`
	Checks []CheckResult `json:"checks"`
	// Sources is the outcome of collecting each section.
	Sources []SourceResult `json:"sources"`
}

// RedisReport is the redis section: ping latency plus INFO.
type RedisReport struct {
	// PingMS is the latency of one PING; absent when the ping failed.
	PingMS *float64 `json:"ping_ms,omitempty"`
	// Info is absent when INFO failed.
	*RedisInfo
}

// SourceResult is the outcome of collecting one report section.
type SourceResult struct {
	// Name is ready, connection, ping, redis, queues, fallbacks, fleet or schedules.
	Name       string      `json:"name"`
	Status     CheckStatus `json:"status"`
	Error      string      `json:"error,omitempty"`
	DurationMS float64     `json:"duration_ms"`
}

// evaluate sets r.Status and r.Reasons from the rest of r.
func (r *Report) evaluate() {
	down, degraded := []string{}, []string{}
	for _, c := range r.Checks {
		if c.Status == CheckOK {
			continue
		}
		what := "failed"
		if c.Status == CheckTimeout {
			what = "timed out"
		}
		if c.Critical {
			down = append(down, fmt.Sprintf("critical check %q %s", c.Name, what))
		} else {
			degraded = append(degraded, fmt.Sprintf("check %q %s", c.Name, what))
		}
	}
	if c := r.Connection; c != nil {
		switch c.State {
		case "ready":
		case "down", "closed":
			down = append(down, fmt.Sprintf("redis connection is %s", c.State))
		default:
			degraded = append(degraded, fmt.Sprintf("redis connection is %s", c.State))
		}
	}
	if r.Redis != nil && r.Redis.RedisInfo != nil && r.Redis.Cluster != nil {
		c := r.Redis.Cluster
		if c.State != "ok" {
			degraded = append(degraded, fmt.Sprintf("redis cluster state is %s", c.State))
		}
		if c.ReachableNodes < c.KnownNodes {
			degraded = append(degraded, fmt.Sprintf("redis cluster: %d of %d nodes reachable", c.ReachableNodes, c.KnownNodes))
		}
	}
	for _, s := range r.Sources {
		if s.Status == CheckOK {
			continue
		}
		what := "failed"
		if s.Status == CheckTimeout {
			what = "timed out"
		}
		degraded = append(degraded, fmt.Sprintf("source %q %s", s.Name, what))
	}
	if !r.Ready {
		msg := "not ready"
		if r.ReadyReason != "" {
			msg += ": " + r.ReadyReason
		}
		degraded = append(degraded, msg)
	}
	for _, f := range r.Fallbacks {
		if f.Active {
			degraded = append(degraded, fmt.Sprintf("fallback active: %s (depth %d)", f.Component, f.Depth))
		}
	}
	r.Reasons = append(down, degraded...)
	switch {
	case len(down) > 0:
		r.Status = StatusDown
	case len(degraded) > 0:
		r.Status = StatusDegraded
	default:
		r.Status = StatusOK
	}
}
