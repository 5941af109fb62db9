package taskhost

import (
	"time"

	"github.com/taskhost/taskhost/internal/config"
	"github.com/taskhost/taskhost/internal/redisconn"
)

// Config is the whole of a worker's configuration. Each field's koanf tag is
// its key in config.yaml; the environment name is the path in upper case with
// "_" for ".", e.g. redis.dial_timeout is REDIS_DIAL_TIMEOUT.
type Config struct {
	Log       LogConfig                 `koanf:"log"`
	Redis     RedisConfig               `koanf:"redis"`
	Worker    WorkerConfig              `koanf:"worker"`
	Health    HealthConfig              `koanf:"health"`
	Cache     CacheConfig               `koanf:"cache"`
	RateLimit RateLimitConfig           `koanf:"ratelimit"`
	Outbox    OutboxConfig              `koanf:"outbox"`
	UI        UIConfig                  `koanf:"ui"`
	Tracing   TracingConfig             `koanf:"tracing"`
	Schedules map[string]ScheduleConfig `koanf:"schedules"` // config_schedules.go
	Plugins   map[string]map[string]any `koanf:"plugins"`

	// complete is set by DefaultConfig, LoadConfig and WithDefaults: every
	// field, zeros included, is then taken as it is (see WithDefaults).
	complete bool
}

// Log configures log/slog output.
type LogConfig struct {
	Level  string `koanf:"level"`  // debug|info|warn|error
	Format string `koanf:"format"` // text|json
}

// Redis modes.
const (
	ModeStandalone = redisconn.ModeStandalone
	ModeSentinel   = redisconn.ModeSentinel
	ModeCluster    = redisconn.ModeCluster
	ModeEmbedded   = redisconn.ModeEmbedded
)

// Redis configures the one connection of the process.
type RedisConfig struct {
	Mode string `koanf:"mode"` // standalone|sentinel|cluster|embedded

	// standalone: URL wins over host/port/username/password/db when set.
	URL      string `koanf:"url"`
	Host     string `koanf:"host"`
	Port     int    `koanf:"port"`
	Username string `koanf:"username"`
	Password string `koanf:"password"`
	DB       int    `koanf:"db"`

	// sentinel
	MasterName       string   `koanf:"master_name"`
	SentinelAddrs    []string `koanf:"sentinel_addrs"`
	SentinelUsername string   `koanf:"sentinel_username"`
	SentinelPassword string   `koanf:"sentinel_password"`

	// cluster
	Addrs []string `koanf:"addrs"`

	TLS TLSConfig `koanf:"tls"`

	DialTimeout   time.Duration `koanf:"dial_timeout"`
	ReadTimeout   time.Duration `koanf:"read_timeout"`
	WriteTimeout  time.Duration `koanf:"write_timeout"`
	PoolTimeout   time.Duration `koanf:"pool_timeout"`
	PoolSize      int           `koanf:"pool_size"`
	MinIdleConns  int           `koanf:"min_idle_conns"`
	MaxRetries    int           `koanf:"max_retries"` // -1 disables retries; 0 means go-redis' default of 3
	DialerRetries int           `koanf:"dialer_retries"`
	KeepAlive     time.Duration `koanf:"keep_alive"`

	// The state monitor.
	PingInterval time.Duration `koanf:"ping_interval"` // probe period while ready
	BackoffMin   time.Duration `koanf:"backoff_min"`   // first reconnect probe delay
	BackoffMax   time.Duration `koanf:"backoff_max"`   // cap of the exponential backoff

	Embedded EmbeddedConfig `koanf:"embedded"`
}

// TLS configures TLS to Redis. A rediss:// URL turns it on too.
type TLSConfig struct {
	Enabled            bool   `koanf:"enabled"`
	CAFile             string `koanf:"ca_file"`
	CertFile           string `koanf:"cert_file"`
	KeyFile            string `koanf:"key_file"`
	ServerName         string `koanf:"server_name"`
	InsecureSkipVerify bool   `koanf:"insecure_skip_verify"`
}

// Embedded configures the in-process development Redis.
type EmbeddedConfig struct {
	Addr string `koanf:"addr"`
}

// Worker configures the asynq server.
type WorkerConfig struct {
	Concurrency     int            `koanf:"concurrency"`
	Queues          map[string]int `koanf:"queues"` // queue name -> weight
	StrictPriority  bool           `koanf:"strict_priority"`
	ShutdownTimeout time.Duration  `koanf:"shutdown_timeout"`
	TaskTimeout     time.Duration  `koanf:"task_timeout"` // default per-task timeout
	MaxRetry        int            `koanf:"max_retry"`    // default for tasks enqueued by taskhost's client
	RetryBaseDelay  time.Duration  `koanf:"retry_base_delay"`
	RetryMaxDelay   time.Duration  `koanf:"retry_max_delay"`
	// MaxPayloadBytes bounds a task's payload wherever taskhost enqueues
	// (its client and outbox, worker enqueue, Host.Enqueue, schedules); a
	// larger task that reaches the worker from another client is archived
	// with the reason. It also sizes the queue pool's read and write
	// timeouts (see docs/reliability.md, "Bad input").
	MaxPayloadBytes int `koanf:"max_payload_bytes"`
	// Fetchers is how many asynq servers share Concurrency, each fetching
	// tasks on its own (see fetchers.go).
	Fetchers int `koanf:"fetchers"`
	// DequeueBatch is the most tasks one dequeue round trip takes from a
	// queue: the first for the fetcher that asked, the others for the next
	// dequeues of that queue, never more than the worker has free slots for
	// (see batchdequeue.go). 1 takes one task per round trip, as asynq does.
	DequeueBatch int `koanf:"dequeue_batch"`
	// Wakeup selects how idle fetchers learn of new tasks: auto (blocking
	// reads on the pending lists; only reads, never changes the server's
	// config), notify (Redis keyspace notifications, turned on with CONFIG
	// SET: changes the server's config; blocking reads where refused), poll
	// (adaptive polling only) or off (asynq's own 1 s poll).
	Wakeup string `koanf:"wakeup"`
	// AutoPipeline batches asynq's scripts other than the dequeue (task
	// done, retry, archive...) from concurrent workers into pipelines, with
	// go-redis' AutoPipeline, when there are 2 or more fetchers. Standalone
	// and sentinel modes.
	AutoPipeline bool `koanf:"autopipeline"`
}

// Health configures the admin HTTP listener.
type HealthConfig struct {
	Addr    string        `koanf:"addr"`
	Detail  string        `koanf:"detail"` // full|minimal
	Timeout time.Duration `koanf:"timeout"`
	// Pprof serves Go's profiles (net/http/pprof) at /debug/pprof/ on the
	// admin listener: off by default; a listener that is not loopback
	// needs the ui.auth credentials.
	Pprof bool `koanf:"pprof"`
}

// Cache configures the cache store.
type CacheConfig struct {
	MaxValueBytes int               `koanf:"max_value_bytes"`
	Memory        CacheMemoryConfig `koanf:"memory"`
}

// CacheMemory configures the in-memory fallback cache.
type CacheMemoryConfig struct {
	MaxEntries int `koanf:"max_entries"`
}

// RateLimit configures named limiters and per-task-type limits, in ulule's
// rate format ("10-S", "1000-H").
type RateLimitConfig struct {
	Limits map[string]string `koanf:"limits"`
	Tasks  map[string]string `koanf:"tasks"`
}

// Outbox configures the enqueue outbox used while Redis is down.
type OutboxConfig struct {
	Path      string  `koanf:"path"` // empty: in memory
	MaxTasks  int     `koanf:"max_tasks"`
	MaxBytes  int64   `koanf:"max_bytes"`
	DrainRate float64 `koanf:"drain_rate"` // tasks per second while draining
}

// UI configures the embedded asynqmon dashboard.
type UIConfig struct {
	Enabled  bool         `koanf:"enabled"`
	Addr     string       `koanf:"addr"` // empty: on the health listener
	ReadOnly bool         `koanf:"read_only"`
	Auth     UIAuthConfig `koanf:"auth"`
}

// UIAuth configures access to the dashboard.
type UIAuthConfig struct {
	Username string `koanf:"username"`
	Password string `koanf:"password"`
	Token    string `koanf:"token"`
}

// DefaultMaxPayloadBytes is worker.max_payload_bytes' default, 1 MiB: the
// bound of managed queues (SQS, Cloud Tasks) and of cache.max_value_bytes.
// A task carries a reference to big data, not the data. At 1 MiB the
// largest task crosses a loaded loopback in a few milliseconds and a slow
// 10 MB/s link in about 0.1 s, well within the default 500 ms timeouts, and
// the default outbox (64 MiB) holds about 45 of them.
const DefaultMaxPayloadBytes = 1 << 20

// TracingConfig configures OpenTelemetry tracing beyond what the standard
// OTEL_* environment variables say (they configure the exporter, sampler and
// resource; see docs/observability.md).
type TracingConfig struct {
	// Enabled turns tracing on even when no OTEL_EXPORTER_OTLP_ENDPOINT is
	// set (spans then go to http://localhost:4318). OTEL_SDK_DISABLED=true
	// keeps it off either way.
	Enabled bool `koanf:"enabled"`
	// RedisCommands adds a span per Redis command made in a task's or an
	// enqueue's context, through go-redis' own instrumentation. Chatty.
	RedisCommands bool `koanf:"redis_commands"`
}

// DefaultConfig returns the built-in defaults, the first layer of
// LoadConfig. It is complete: a zero set on it is taken as it is (see
// WithDefaults).
func DefaultConfig() Config {
	return Config{
		complete: true,
		Log:      LogConfig{Level: "info", Format: "text"},
		Redis:    redisConfigFrom(redisconn.DefaultConfig()),
		Worker: WorkerConfig{
			Concurrency:     10,
			Queues:          map[string]int{"default": 1},
			ShutdownTimeout: 30 * time.Second,
			TaskTimeout:     30 * time.Minute,
			MaxRetry:        25,
			RetryBaseDelay:  time.Second,
			RetryMaxDelay:   time.Hour,
			MaxPayloadBytes: DefaultMaxPayloadBytes,
			Fetchers:        4,
			DequeueBatch:    16,
			Wakeup:          "auto",
			AutoPipeline:    true,
		},
		Health:    HealthConfig{Addr: "127.0.0.1:8080", Detail: "full", Timeout: time.Second},
		Cache:     CacheConfig{MaxValueBytes: 1 << 20, Memory: CacheMemoryConfig{MaxEntries: 10000}},
		RateLimit: RateLimitConfig{Limits: map[string]string{}, Tasks: map[string]string{}},
		Outbox:    OutboxConfig{MaxTasks: 100000, MaxBytes: 64 << 20, DrainRate: 2000},
		UI:        UIConfig{ReadOnly: true},
		Schedules: map[string]ScheduleConfig{},
		Plugins:   map[string]map[string]any{},
	}
}

// conn is the connection's own view of r.
func (r RedisConfig) conn() redisconn.Config {
	return redisconn.Config{
		Mode:             r.Mode,
		URL:              r.URL,
		Host:             r.Host,
		Port:             r.Port,
		Username:         r.Username,
		Password:         r.Password,
		DB:               r.DB,
		MasterName:       r.MasterName,
		SentinelAddrs:    r.SentinelAddrs,
		SentinelUsername: r.SentinelUsername,
		SentinelPassword: r.SentinelPassword,
		Addrs:            r.Addrs,
		TLS:              redisconn.TLS(r.TLS),
		DialTimeout:      r.DialTimeout,
		ReadTimeout:      r.ReadTimeout,
		WriteTimeout:     r.WriteTimeout,
		PoolTimeout:      r.PoolTimeout,
		PoolSize:         r.PoolSize,
		MinIdleConns:     r.MinIdleConns,
		MaxRetries:       r.MaxRetries,
		DialerRetries:    r.DialerRetries,
		KeepAlive:        r.KeepAlive,
		PingInterval:     r.PingInterval,
		BackoffMin:       r.BackoffMin,
		BackoffMax:       r.BackoffMax,
		Embedded:         redisconn.Embedded{Addr: r.Embedded.Addr},
	}
}

// redisConfigFrom is the inverse of RedisConfig.conn: the connection
// package owns the connection defaults.
func redisConfigFrom(r redisconn.Config) RedisConfig {
	return RedisConfig{
		Mode:             r.Mode,
		URL:              r.URL,
		Host:             r.Host,
		Port:             r.Port,
		Username:         r.Username,
		Password:         r.Password,
		DB:               r.DB,
		MasterName:       r.MasterName,
		SentinelAddrs:    r.SentinelAddrs,
		SentinelUsername: r.SentinelUsername,
		SentinelPassword: r.SentinelPassword,
		Addrs:            r.Addrs,
		TLS:              TLSConfig(r.TLS),
		DialTimeout:      r.DialTimeout,
		ReadTimeout:      r.ReadTimeout,
		WriteTimeout:     r.WriteTimeout,
		PoolTimeout:      r.PoolTimeout,
		PoolSize:         r.PoolSize,
		MinIdleConns:     r.MinIdleConns,
		MaxRetries:       r.MaxRetries,
		DialerRetries:    r.DialerRetries,
		KeepAlive:        r.KeepAlive,
		PingInterval:     r.PingInterval,
		BackoffMin:       r.BackoffMin,
		BackoffMax:       r.BackoffMax,
		Embedded:         EmbeddedConfig{Addr: r.Embedded.Addr},
	}
}

// ErrInvalidConfig is matched, with errors.Is, by every error that reports a
// bad configuration: LoadConfig, Config.Validate, New, and a plugin's
// Host.DecodeConfig. The worker exits with code 2 on it.
var ErrInvalidConfig = config.ErrInvalid
