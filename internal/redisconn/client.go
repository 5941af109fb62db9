package redisconn

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// ErrUnknownMode is returned by NewClient for a redis.mode it does not know.
var ErrUnknownMode = errors.New("redisconn: unknown redis mode")

// ErrIncompleteConfig is returned by NewClient when a mode lacks a required key.
var ErrIncompleteConfig = errors.New("redisconn: incomplete redis config")

// Option changes how NewClient builds the client.
type Option func(*clientOptions)

type clientOptions struct {
	logger *slog.Logger
}

// WithLogger makes NewClient log warnings about the configuration, such as
// insecure_skip_verify, on l (under component=redis).
func WithLogger(l *slog.Logger) Option {
	return func(o *clientOptions) { o.logger = l }
}

// NewClient builds the one redis.UniversalClient of the process from cfg. It
// never contacts Redis: the first command dials.
//
// Zero timeouts take taskhost's defaults (DefaultConfig), not go-redis' much
// longer ones; DialerRetries below 1 means one attempt (go-redis would make it
// 5); ContextTimeoutEnabled is on, so a caller's deadline also bounds a call.
// With the defaults (500 ms dial/read/write/pool, MaxRetries -1) a call fails
// in under 1 ms when Redis refuses or is gone, and in about 0.5 s when it is
// frozen (a pooled connection's read, or a fresh connection's HELLO, times
// out). The worst case is a caller that first waits for a pool turn and then
// for its reply: PoolTimeout + ReadTimeout, 1.0 s with the defaults (0.9 s
// with pool_timeout 400ms). MaxRetries 0 (go-redis' 3 retries) or longer
// timeouts multiply that. Blocking commands (BLPOP and friends) wait their own
// timeout plus 10 s unless the caller's context ends sooner. In cluster mode
// go-redis retries a timed-out command on the same and then another node (up
// to MaxRedirects, 3), so the bound there is a multiple of ReadTimeout.
//
// A URL gives the address, credentials, database and TLS on/off; its query
// options for timeouts, pool and TLS verification are overridden by the
// redis.* keys. Pipelines share the main pool (see noPipelinePool).
func NewClient(cfg Config, opts ...Option) (redis.UniversalClient, error) {
	var o clientOptions
	for _, fn := range opts {
		fn(&o)
	}
	t := effectiveTimeouts(cfg)
	switch cfg.Mode {
	case ModeStandalone, "":
		ro, err := standaloneOptions(cfg)
		if err != nil {
			return nil, err
		}
		return newStandalone(cfg, ro, t, o.logger)
	case ModeEmbedded:
		if cfg.Embedded.Addr == "" {
			return nil, fmt.Errorf("%w: redis.embedded.addr is empty", ErrIncompleteConfig)
		}
		ro := &redis.Options{Addr: cfg.Embedded.Addr, Username: cfg.Username, Password: cfg.Password, DB: cfg.DB}
		t.tls = nil // miniredis speaks plain TCP
		return redis.NewClient(applyTimeouts(ro, t)), nil
	case ModeSentinel:
		if cfg.MasterName == "" || len(cfg.SentinelAddrs) == 0 {
			return nil, fmt.Errorf("%w: sentinel mode needs redis.master_name and redis.sentinel_addrs", ErrIncompleteConfig)
		}
		tc, err := tlsFor(cfg, "", o.logger)
		if err != nil {
			return nil, err
		}
		t.tls = tc
		return redis.NewFailoverClient(failoverOptions(cfg, t)), nil
	case ModeCluster:
		if len(cfg.Addrs) == 0 {
			return nil, fmt.Errorf("%w: cluster mode needs redis.addrs", ErrIncompleteConfig)
		}
		tc, err := tlsFor(cfg, "", o.logger)
		if err != nil {
			return nil, err
		}
		t.tls = tc
		return redis.NewClusterClient(clusterOptions(cfg, t)), nil
	default:
		return nil, fmt.Errorf("%w: %q (want standalone, sentinel, cluster or embedded)", ErrUnknownMode, cfg.Mode)
	}
}

func newStandalone(cfg Config, ro *redis.Options, t timeouts, logger *slog.Logger) (redis.UniversalClient, error) {
	serverName := ""
	if ro.TLSConfig != nil { // rediss:// URL
		serverName = ro.TLSConfig.ServerName
	}
	tc, err := tlsFor(cfg, serverName, logger)
	if err != nil {
		return nil, err
	}
	if tc == nil && ro.TLSConfig != nil {
		tc = ro.TLSConfig
	}
	t.tls = tc
	ro.TLSConfig = nil // TLS is done by our dialer, which honours the context
	return redis.NewClient(applyTimeouts(ro, t)), nil
}

// standaloneOptions reads the URL, or host/port/username/password/db.
func standaloneOptions(cfg Config) (*redis.Options, error) {
	if cfg.URL == "" {
		if cfg.Host == "" {
			return nil, fmt.Errorf("%w: standalone mode needs redis.url or redis.host", ErrIncompleteConfig)
		}
		port := cfg.Port
		if port == 0 {
			port = 6379
		}
		return &redis.Options{
			Addr:     net.JoinHostPort(cfg.Host, strconv.Itoa(port)),
			Username: cfg.Username,
			Password: cfg.Password,
			DB:       cfg.DB,
		}, nil
	}
	ro, err := redis.ParseURL(cfg.URL)
	if err != nil {
		// config.Validate explains what is wrong; go-redis' message could
		// quote a piece of a password that was not percent-encoded.
		return nil, fmt.Errorf("%w: redis.url does not parse", ErrIncompleteConfig)
	}
	// redis.username and redis.password (REDIS_USERNAME, REDIS_PASSWORD)
	// fill in a URL without credentials; config.Validate refuses a URL
	// whose password differs from redis.password.
	if ro.Username == "" {
		ro.Username = cfg.Username
	}
	if ro.Password == "" {
		ro.Password = cfg.Password
	}
	return ro, nil
}
