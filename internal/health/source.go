package health

import (
	"context"
	"time"
)

// Source is what the runtime tells the report. Each func fills one section;
// a nil func leaves its section out. The funcs run concurrently, each under
// the probe's deadline: one that has not returned by then is reported as a
// timeout in Report.Sources and its section is left empty. A func that is
// still running from an earlier probe is joined, not started again.
//
// Connection, Fallbacks and Warnings should read in-memory state only; Ping, Redis and
// Queues talk to Redis and are skipped at DetailMinimal.
type Source struct {
	Connection func(ctx context.Context) (Connection, error)
	Ping       func(ctx context.Context) (time.Duration, error)
	Redis      func(ctx context.Context) (RedisInfo, error)
	Queues     func(ctx context.Context) ([]Queue, error)
	Fallbacks  func(ctx context.Context) ([]Fallback, error)
	// Fleet is this worker's role and the live workers on its Redis; it
	// reads Redis and is skipped at DetailMinimal.
	Fleet func(ctx context.Context) (Fleet, error)
	// Schedules are the periodic tasks, from memory.
	Schedules func(ctx context.Context) ([]Schedule, error)
	// Warnings adds facts an operator must see that do not change the
	// status, such as tasks in a quarantine; it should read memory only.
	Warnings func(ctx context.Context) ([]string, error)
	// Config says which generation of the configuration runs; memory only.
	Config func(ctx context.Context) (ConfigInfo, error)
}

// Fleet is what a worker knows of the workers sharing its Redis.
type Fleet struct {
	// Role is this worker's role: "peer" in taskhost, where every worker
	// runs the scheduler and recovers expired leases, and none leads.
	Role string `json:"role"`
	// Workers is the number of live worker processes: asynq servers with a
	// fresh heartbeat, counted once per host and PID.
	Workers int `json:"workers"`
	// Servers is the number of those asynq servers; a taskhost worker runs
	// worker.fetchers of them.
	Servers int `json:"servers"`
}

// Schedule is one periodic task of the scheduler.
type Schedule struct {
	// Name is schedules.<name> or plugins.<id>.<task type>.
	Name  string `json:"name"`
	Spec  string `json:"spec"`
	Type  string `json:"type"`
	Queue string `json:"queue"`
	// NextRun is the next tick; absent when there is none.
	NextRun *time.Time `json:"next_run,omitempty"`
	// LastRun is the last tick known to be in Redis, enqueued by this
	// worker or another; absent before the first.
	LastRun *time.Time `json:"last_run,omitempty"`
	// LastResult is how this worker's last tick went: enqueued, duplicate
	// (another worker had enqueued it), unique_locked or missed.
	LastResult string `json:"last_result,omitempty"`
	// LastError is the error of a missed tick, redacted; left out at DetailMinimal.
	LastError string `json:"last_error,omitempty"`
	// Ticks counts this worker's ticks by result.
	Ticks map[string]uint64 `json:"ticks"`
}

// ConfigInfo is the config section: which configuration the worker runs,
// and how its last reload went.
type ConfigInfo struct {
	// Generation counts the configurations the worker has run: 1 for the
	// one it started with, one more per reload that applied a change.
	Generation int64 `json:"generation"`
	// LoadedAt is when the running generation was loaded.
	LoadedAt time.Time `json:"loaded_at"`
	// LastReload is the last reload attempt; omitted before the first.
	LastReload *ReloadInfo `json:"last_reload,omitempty"`
}

// ReloadInfo is the outcome of one reload attempt (SIGHUP or `worker reload`).
type ReloadInfo struct {
	// At is when it was attempted.
	At time.Time `json:"at"`
	// Outcome is applied, unchanged, refused (a key needs a restart),
	// invalid (a config error) or failed (a plugin could not apply it).
	Outcome string `json:"outcome"`
	// Keys are the keys applied, or refused.
	Keys []string `json:"keys,omitempty"`
	// Error says why it was refused, invalid or failed, redacted; omitted
	// at minimal detail.
	Error string `json:"error,omitempty"`
}

// Connection is the state of the runtime's Redis connection.
type Connection struct {
	// State is the monitor's state: connecting, ready, reconnecting, down or closed.
	State string `json:"state"`
	// Since is when State was entered.
	Since time.Time `json:"since"`
	// SinceSeconds is the age of State when the report was made; the report fills it.
	SinceSeconds float64 `json:"since_seconds"`
	// Mode is redis.mode: standalone, sentinel, cluster or embedded.
	Mode string `json:"mode"`
	// Target is where the client connects, e.g. "10.0.0.5:6379"; it is
	// redacted, and left out at DetailMinimal.
	Target string `json:"target,omitempty"`
	// Master is, in sentinel mode, the address of the master the client last
	// connected to; left out at DetailMinimal.
	Master string `json:"master,omitempty"`
	// LastError is the most recent connection error, redacted; left out at DetailMinimal.
	LastError string `json:"last_error,omitempty"`
	// CameBackEmptyAt is when the monitor last saw Redis come back without
	// its data (a new run_id and a missing marker key). It adds a warning.
	CameBackEmptyAt *time.Time `json:"came_back_empty_at,omitempty"`
}

// RedisInfo is what INFO and DBSIZE say about the server.
type RedisInfo struct {
	Version               string  `json:"version"`
	UptimeSeconds         int64   `json:"uptime_seconds"`
	UsedMemoryBytes       int64   `json:"used_memory_bytes"`
	UsedMemoryPeakBytes   int64   `json:"used_memory_peak_bytes"`
	MaxMemoryBytes        int64   `json:"maxmemory_bytes"`
	MemFragmentationRatio float64 `json:"mem_fragmentation_ratio"`
	ConnectedClients      int64   `json:"connected_clients"`
	DBSize                int64   `json:"dbsize"`
	// Cluster is set in cluster mode only.
	Cluster *ClusterInfo `json:"cluster,omitempty"`
}

// ClusterInfo is what CLUSTER INFO says, and how many nodes answer.
type ClusterInfo struct {
	// State is cluster_state: ok, or fail when some slots are not served.
	State string `json:"state"`
	// SlotsOK is cluster_slots_ok: slots served by a reachable master (of 16384).
	SlotsOK int64 `json:"slots_ok"`
	// Size is cluster_size: masters serving at least one slot.
	Size int64 `json:"size"`
	// KnownNodes is cluster_known_nodes: nodes in the cluster, masters and replicas.
	KnownNodes int64 `json:"known_nodes"`
	// ReachableNodes is how many nodes, masters and replicas, the answering
	// master sees as connected and not failing (CLUSTER NODES).
	ReachableNodes int64 `json:"reachable_nodes"`
}

// Queue is one asynq queue, as the Inspector sees it.
type Queue struct {
	Name      string `json:"name"`
	Size      int    `json:"size"`
	Pending   int    `json:"pending"`
	Active    int    `json:"active"`
	Scheduled int    `json:"scheduled"`
	Retry     int    `json:"retry"`
	Archived  int    `json:"archived"`
	Completed int    `json:"completed"`
	// LatencySeconds is how long the oldest pending task has waited.
	LatencySeconds float64 `json:"latency_seconds"`
	// ProcessedToday and FailedToday reset daily (UTC), as asynq counts them.
	ProcessedToday int `json:"processed_today"`
	FailedToday    int `json:"failed_today"`
	// ProcessedTotal and FailedTotal are cumulative.
	ProcessedTotal int  `json:"processed_total"`
	FailedTotal    int  `json:"failed_total"`
	Paused         bool `json:"paused"`
}

// Fallback is the state of one component that falls back while Redis is down.
type Fallback struct {
	// Component is cache, ratelimit or outbox.
	Component string `json:"component"`
	// Active is true while the component serves from its fallback.
	Active bool `json:"active"`
	// Depth is what the fallback holds: cache entries, limiter keys or outbox tasks.
	Depth int64 `json:"depth"`
	// Since is when the fallback was last switched on or off.
	Since *time.Time `json:"since,omitempty"`
}
