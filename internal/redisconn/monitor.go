package redisconn

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/connerr"
)

// ErrClosed is returned by Wait when the monitor closes before the wanted state.
var ErrClosed = errors.New("redisconn: monitor closed")

// Monitor watches the shared client and publishes its State. It probes with
// PING every PingInterval while ready, at once when a command fails with a
// network error (through a hook it adds to the client), and with capped
// exponential backoff while failing, forever. It never closes the client.
type Monitor struct {
	client redis.UniversalClient
	opts   MonitorOptions
	log    *slog.Logger

	state     atomic.Int32
	nudges    chan struct{} // a call failed with a network error
	recovered chan struct{} // a dial or call succeeded while not ready
	stop      chan struct{}
	done      chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc

	mu          sync.Mutex
	started     bool
	closed      bool
	since       time.Time
	transitions uint64
	subs        map[uint64]*subscriber
	nextSub     uint64
	deliveries  sync.WaitGroup
	restart     restartState

	// Owned by the probe loop.
	failSince   time.Time
	lastReason  string
	problem     string // Misconfigured of the failing probe's error
	toldProblem string // the problem last logged, so each is logged once
	backoff     time.Duration
	lastProbe   time.Time
	probes      uint64 // successful pings, for spacing the empty-restart check
}

// NewMonitor returns a monitor of client in state Connecting and adds its hook
// to client. It does not contact Redis; Start does, in the background.
func NewMonitor(client redis.UniversalClient, opts MonitorOptions) *Monitor {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	m := &Monitor{
		client:    client,
		opts:      opts,
		log:       opts.Logger.With("component", "redis", "target", opts.Target),
		nudges:    make(chan struct{}, 1),
		recovered: make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
		since:     time.Now(),
		subs:      make(map[uint64]*subscriber),
	}
	m.state.Store(int32(Connecting))
	client.AddHook(nudgeHook{m})
	return m
}

// Start launches the probe loop and returns at once. Calls after the first,
// or after Close, do nothing.
func (m *Monitor) Start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started || m.closed {
		return
	}
	m.started = true
	m.log.Debug("redis connecting")
	go m.run()
}

// Close stops the probe loop, sets Closed and waits until subscribers have
// received it. It is safe to call more than once, must not be called from a
// subscriber callback, and never closes the client.
func (m *Monitor) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	started := m.started
	m.mu.Unlock()

	close(m.stop)
	m.cancel()
	if started {
		<-m.done
	}
	m.setState(Closed, "monitor closed")
	m.deliveries.Wait()
}

// State returns the current state.
func (m *Monitor) State() State { return State(m.state.Load()) }

// Ready reports whether the state is Ready.
func (m *Monitor) Ready() bool { return m.State() == Ready }

// Since returns when the current state began.
func (m *Monitor) Since() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.since
}

// Transitions returns how many state changes have happened.
func (m *Monitor) Transitions() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.transitions
}

// setState moves to `to`, logs it and notifies subscribers; it does nothing
// when the state is already `to` or Closed. Only one goroutine calls it at a
// time (the probe loop, or Close once the loop has ended), so the log line can
// be written before the new state becomes visible: whoever sees a state can
// find its log line.
func (m *Monitor) setState(to State, reason string, extra ...any) {
	from := m.State()
	if from == to || from == Closed {
		return
	}
	attrs := append([]any{"from", from.String(), "to", to.String()}, extra...)
	if m.opts.Annotate != nil {
		attrs = append(attrs, m.opts.Annotate(from, to)...)
	}
	// One line when an outage starts and one when it ends: the first
	// second of failures (reconnecting) is detail; down is the outage; the
	// ready line tells how long it lasted. A blip that never went down is
	// one line, at its end, a warning. A misconfiguration is said once.
	switch {
	case to == Ready:
		level := slog.LevelInfo
		if from == Reconnecting {
			level = slog.LevelWarn
		}
		m.log.Log(context.Background(), level, "redis ready", attrs...)
	case (to == Reconnecting || to == Down) && m.problem != "":
		if m.problem != m.toldProblem {
			m.toldProblem = m.problem
			m.log.Error(connerr.MisconfiguredHint(m.problem), append(attrs, "problem", m.problem, "reason", reason)...)
		}
	case to == Reconnecting:
		m.log.Debug("redis connection lost; reconnecting", append(attrs, "reason", reason)...)
	case to == Down:
		m.log.Error("redis down; reconnecting with backoff", append(attrs, "reason", reason)...)
	default:
		m.log.Debug("redis monitor "+to.String(), attrs...)
	}

	m.mu.Lock()
	m.state.Store(int32(to))
	m.since = time.Now()
	m.transitions++
	for _, s := range m.subs {
		s.enqueue(&m.deliveries, from, to)
	}
	m.mu.Unlock()
}
