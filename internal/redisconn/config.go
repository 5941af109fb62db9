package redisconn

import "time"

// Redis modes.
const (
	ModeStandalone = "standalone"
	ModeSentinel   = "sentinel"
	ModeCluster    = "cluster"
	ModeEmbedded   = "embedded"
)

// Config configures the one connection of the process.
type Config struct {
	Mode string // standalone|sentinel|cluster|embedded

	// standalone: URL wins over host/port/username/password/db when set.
	URL      string
	Host     string
	Port     int
	Username string
	Password string
	DB       int

	// sentinel
	MasterName       string
	SentinelAddrs    []string
	SentinelUsername string
	SentinelPassword string

	// cluster
	Addrs []string

	TLS TLS

	DialTimeout   time.Duration
	ReadTimeout   time.Duration
	WriteTimeout  time.Duration
	PoolTimeout   time.Duration
	PoolSize      int
	MinIdleConns  int
	MaxRetries    int // -1 disables retries; 0 means go-redis' default of 3
	DialerRetries int
	KeepAlive     time.Duration

	// The state monitor.
	PingInterval time.Duration // probe period while ready
	BackoffMin   time.Duration // first reconnect probe delay
	BackoffMax   time.Duration // cap of the exponential backoff

	Embedded Embedded
}

// TLS configures TLS to Redis. A rediss:// URL turns it on too.
type TLS struct {
	Enabled            bool
	CAFile             string
	CertFile           string
	KeyFile            string
	ServerName         string
	InsecureSkipVerify bool
}

// Embedded configures the in-process development Redis.
type Embedded struct {
	Addr string
}

// DefaultConfig is taskhost's connection defaults: every timeout explicit,
// retries off, so that an unreachable Redis fails a call in about one second.
func DefaultConfig() Config {
	return Config{
		Mode:          ModeStandalone,
		Host:          "127.0.0.1",
		Port:          6379,
		DialTimeout:   500 * time.Millisecond,
		ReadTimeout:   500 * time.Millisecond,
		WriteTimeout:  500 * time.Millisecond,
		PoolTimeout:   400 * time.Millisecond,
		PoolSize:      20,
		MaxRetries:    -1,
		DialerRetries: 1,
		KeepAlive:     30 * time.Second,
		PingInterval:  time.Second,
		BackoffMin:    250 * time.Millisecond,
		BackoffMax:    2 * time.Second,
		Embedded:      Embedded{Addr: "127.0.0.1:6380"},
	}
}
