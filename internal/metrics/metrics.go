package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes every metric taskhost defines.
const Namespace = "taskhost"

// Task outcomes, the values of the outcome label of taskhost_tasks_processed_total.
const (
	OutcomeSuccess     = "success"
	OutcomeFailure     = "failure"
	OutcomePanic       = "panic"
	OutcomeRateLimited = "rate_limited"
	OutcomeArchived    = "archived"
)

// Outcomes lists the task outcomes.
var Outcomes = []string{OutcomeSuccess, OutcomeFailure, OutcomePanic, OutcomeRateLimited, OutcomeArchived}

// States lists the Redis connection states whose series exist from the
// start; SetState accepts others too.
var States = []string{"connecting", "ready", "reconnecting", "down", "closed"}

// DurationBuckets are the bounds of taskhost_task_duration_seconds, from 5ms to 10m.
var DurationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// Metrics is taskhost's Prometheus metrics on a registry of its own. It is
// safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	processed   *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	inFlight    prometheus.Gauge
	state       *prometheus.GaugeVec
	transitions *prometheus.CounterVec

	mu       sync.Mutex
	curState string
}

// New returns Metrics on a fresh registry that also holds the Go and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "tasks_processed_total",
			Help: "Tasks handled, by task type, queue and outcome (success, failure, panic, rate_limited, archived).",
		}, []string{"type", "queue", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "task_duration_seconds",
			Help:    "How long task handlers ran, by task type.",
			Buckets: DurationBuckets,
		}, []string{"type"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "tasks_in_flight",
			Help: "Tasks being handled now.",
		}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "redis_state",
			Help: "The Redis connection's state: 1 for the current state, 0 for the others.",
		}, []string{"state"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "redis_state_transitions_total",
			Help: "Changes of the Redis connection's state, by the state entered.",
		}, []string{"to"}),
	}
	for _, s := range States {
		m.state.WithLabelValues(s)
		m.transitions.WithLabelValues(s)
	}
	m.reg.MustRegister(m.processed, m.duration, m.inFlight, m.state, m.transitions,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Gatherer is what /metrics serves.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Registerer lets other parts of the process add their own collectors.
func (m *Metrics) Registerer() prometheus.Registerer { return m.reg }

// ObserveTask counts one handled task and records its duration. outcome is
// one of the Outcome constants.
func (m *Metrics) ObserveTask(taskType, queue, outcome string, d time.Duration) {
	m.processed.WithLabelValues(taskType, queue, outcome).Inc()
	m.duration.WithLabelValues(taskType).Observe(d.Seconds())
}

// TaskStarted adds one to the tasks in flight.
func (m *Metrics) TaskStarted() { m.inFlight.Inc() }

// TaskFinished takes one from the tasks in flight.
func (m *Metrics) TaskFinished() { m.inFlight.Dec() }

// SetState records the Redis connection's state. A change from an earlier
// state counts one transition; the first state set is not a transition, and
// setting the current state again changes nothing.
func (m *Metrics) SetState(state string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	prev := m.curState
	if prev == state {
		return
	}
	m.curState = state
	if prev != "" {
		m.state.WithLabelValues(prev).Set(0)
		m.transitions.WithLabelValues(state).Inc()
	}
	m.state.WithLabelValues(state).Set(1)
}
