package taskhost

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/redisconn"
)

// State is the state of the runtime's Redis connection, as its monitor sees
// it. The monitor probes Redis (PING every redis.ping_interval while ready,
// at once when a call fails, with capped backoff while failing) and moves
// Connecting → Ready → Reconnecting → Down, back to Ready when Redis answers
// again, and to Closed when the runtime stops. It never gives up.
type State int32

// The connection states. Their order and names are the monitor's.
const (
	// StateConnecting is the state from New until the first probe answers.
	StateConnecting State = State(redisconn.Connecting)
	// StateReady means the last probe succeeded: the cache and the limiter
	// are on Redis and the Client enqueues directly.
	StateReady State = State(redisconn.Ready)
	// StateReconnecting means a probe failed while ready. The cache and
	// the limiter are on memory and the Client holds tasks in its outbox.
	StateReconnecting State = State(redisconn.Reconnecting)
	// StateDown means probes have failed for a while; they go on with backoff.
	StateDown State = State(redisconn.Down)
	// StateClosed is final: the runtime stopped.
	StateClosed State = State(redisconn.Closed)
)

// String returns the lower-case name: "connecting", "ready",
// "reconnecting", "down" or "closed", as /healthz and the logs show it.
func (s State) String() string { return redisconn.State(s).String() }

// MarshalText encodes the state as its name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ErrNotReady is returned by Diagnostics while the connection is not ready:
// it answers at once rather than wait for Redis.
var ErrNotReady = errors.New("taskhost: redis is not ready")

// Redis is the shared application client: the one the cache, the limiter,
// the Client and the health report use. The runtime owns it and closes it
// last in Stop: do not close it. It has no fallback: while Redis is down its
// calls fail (within about a second, with the timeouts of redis.*).
func (r *Runtime) Redis() redis.UniversalClient { return r.rdb }

// State is the current connection state.
func (r *Runtime) State() State { return State(r.monitor.State()) }

// Ready reports whether the connection state is StateReady.
func (r *Runtime) Ready() bool { return r.monitor.Ready() }

// Subscribe calls fn(from, to) for every later change of the connection
// state, in order, never concurrently for one subscriber, on a goroutine of
// the runtime's. fn should return quickly (it delays only its own later
// calls) and must not call Stop. To learn the current state without a race,
// Subscribe first and then call State. The returned func unsubscribes; it
// may be called from fn and more than once. Subscriptions end with the
// transition to StateClosed in Stop.
func (r *Runtime) Subscribe(fn func(from, to State)) (unsubscribe func()) {
	return r.monitor.Subscribe(func(from, to redisconn.State) { fn(State(from), State(to)) })
}

// WaitReady waits until the connection is ready, and returns nil then (at
// once when it is ready already), ctx's error when ctx ends first, or
// ErrClosed when the runtime stops first. The monitor starts with Start:
// before it, WaitReady waits for Start. The cache and the limiter follow the
// monitor on subscriptions of their own, so they switch to Redis moments
// after it reports ready (Cache().Backend() and Limits().Backend() say when).
func (r *Runtime) WaitReady(ctx context.Context) error {
	err := r.monitor.Wait(ctx, redisconn.Ready)
	if errors.Is(err, redisconn.ErrClosed) {
		return ErrClosed
	}
	return err
}

// Diagnostics is a snapshot of the Redis server and of the runtime's
// connection to it, from Runtime.Diagnostics. It holds no secret.
type Diagnostics struct {
	// State is the connection state when the snapshot was taken.
	State State
	// PingLatency is how long one PING took.
	PingLatency time.Duration
	// Version is the server's redis_version, and Mode its redis_mode
	// (standalone, sentinel or cluster).
	Version, Mode string
	// Uptime is how long the server has run (uptime_in_seconds).
	Uptime time.Duration
	// UsedMemory, PeakMemory and MaxMemory are in bytes (used_memory,
	// used_memory_peak, maxmemory; MaxMemory is 0 when unbounded).
	UsedMemory, PeakMemory, MaxMemory int64
	// FragmentationRatio is mem_fragmentation_ratio.
	FragmentationRatio float64
	// ConnectedClients is connected_clients: every client of the server,
	// not only this process's.
	ConnectedClients int64
	// DBSize is the number of keys in the database (summed over the
	// masters in cluster mode).
	DBSize int64
	// Pool is the shared client's connection pool (Redis().PoolStats()).
	Pool redis.PoolStats
	// Info is the whole INFO reply, parsed; a value that contains ':' is
	// kept whole. In cluster mode it comes from one node.
	Info map[string]string
}

// Diagnostics pings Redis and reads INFO and DBSIZE on the shared client,
// in one call, within ctx and the client's timeouts. While the connection
// is not ready it returns at once with State, Pool and an error matching
// ErrNotReady; on a failure it returns what it read so far (always State and
// Pool) with the error.
func (r *Runtime) Diagnostics(ctx context.Context) (Diagnostics, error) {
	d := Diagnostics{State: r.State()}
	if ps := r.rdb.PoolStats(); ps != nil {
		d.Pool = *ps
	}
	if d.State != StateReady {
		return d, fmt.Errorf("%w: the connection is %s", ErrNotReady, d.State)
	}
	raw, err := redisconn.Diagnose(ctx, r.rdb)
	d.PingLatency = raw.PingLatency
	d.Version, d.Mode = raw.Version, raw.Mode
	d.Uptime = time.Duration(raw.UptimeSeconds) * time.Second
	d.UsedMemory, d.PeakMemory, d.MaxMemory = raw.UsedMemory, raw.PeakMemory, raw.MaxMemory
	d.FragmentationRatio = raw.FragmentationRatio
	d.ConnectedClients, d.DBSize = raw.ConnectedClients, raw.DBSize
	d.Info = raw.Info
	if err != nil {
		return d, fmt.Errorf("taskhost: diagnostics: %w", err)
	}
	return d, nil
}

// FlushDB deletes every key of the configured database: on every master in
// cluster mode, and whatever wrote them. That is the queued, scheduled,
// retrying and archived tasks of every worker on this Redis, asynq's
// bookkeeping, the shared cache and the rate-limit counters; only the
// outbox, which lives in this process, is kept. It cannot be undone.
//
// It is DESTRUCTIVE and meant for tests and deliberate operator tooling in
// Go. taskhost never calls it and never exposes it over HTTP. After a flush
// the runtime lists its queues with asynq again, so the dashboard and the
// health report still show them.
func (r *Runtime) FlushDB(ctx context.Context) error {
	if err := redisconn.FlushDB(ctx, r.rdb); err != nil {
		return fmt.Errorf("taskhost: %w", err)
	}
	r.log.Warn("redis database flushed: every key is gone, queued tasks included", "component", "redis")
	r.publishQueues()
	return nil
}
