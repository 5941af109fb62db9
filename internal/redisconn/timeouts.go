package redisconn

import (
	"crypto/tls"
	"time"

	"github.com/redis/go-redis/v9"
)

// noPipelinePool makes pipelines share the main pool. With go-redis' separate
// pipeline pool, a pipeline against a frozen Redis first times out
// initialising a pipeline-pool connection, then spills to the main pool and
// times out again: twice the read timeout (measured 1.0 s with 500 ms).
const noPipelinePool = -1

// dialerRetryTimeout is the pause between dial attempts when DialerRetries > 1.
const dialerRetryTimeout = 100 * time.Millisecond

// clusterStateReload bounds how old a cluster client's slot map may get
// before a command triggers a background CLUSTER SLOTS. go-redis v9.23
// reloads on MOVED/ASK or every 60 s by default; after a master dies, no
// MOVED arrives (its slots' commands fail to dial the dead address), so the
// client kept dialing it for 60 s after its replica took over, and the
// runtime stayed down that long (TestRuntimeClusterMasterFailover, -tags
// scale). It costs at most one CLUSTER SLOTS per client per period.
const clusterStateReload = 2 * time.Second

type timeouts struct {
	dial, read, write, pool time.Duration
	keepAlive               time.Duration
	poolSize, minIdle       int
	maxRetries, dialRetries int
	tls                     *tls.Config
}

// effectiveTimeouts fills zero values with taskhost's defaults.
func effectiveTimeouts(cfg Config) timeouts {
	def := DefaultConfig()
	pick := func(v, d time.Duration) time.Duration {
		if v == 0 {
			return d
		}
		return v
	}
	t := timeouts{
		dial:        pick(cfg.DialTimeout, def.DialTimeout),
		read:        pick(cfg.ReadTimeout, def.ReadTimeout),
		write:       pick(cfg.WriteTimeout, def.WriteTimeout),
		pool:        pick(cfg.PoolTimeout, def.PoolTimeout),
		keepAlive:   pick(cfg.KeepAlive, def.KeepAlive),
		poolSize:    cfg.PoolSize,
		minIdle:     cfg.MinIdleConns,
		maxRetries:  cfg.MaxRetries,
		dialRetries: cfg.DialerRetries,
	}
	if t.dialRetries < 1 {
		t.dialRetries = 1
	}
	return t
}

func applyTimeouts(ro *redis.Options, t timeouts) *redis.Options {
	ro.Dialer = newDialer(t.dial, t.keepAlive, t.tls)
	ro.DialTimeout = t.dial
	ro.ReadTimeout = t.read
	ro.WriteTimeout = t.write
	ro.PoolTimeout = t.pool
	ro.ContextTimeoutEnabled = true
	ro.PoolSize = t.poolSize
	ro.MinIdleConns = t.minIdle
	ro.MaxRetries = t.maxRetries
	ro.DialerRetries = t.dialRetries
	ro.DialerRetryTimeout = dialerRetryTimeout
	ro.PipelinePoolSize = noPipelinePool
	return ro
}

func failoverOptions(cfg Config, t timeouts) *redis.FailoverOptions {
	return &redis.FailoverOptions{
		MasterName:            cfg.MasterName,
		SentinelAddrs:         cfg.SentinelAddrs,
		SentinelUsername:      cfg.SentinelUsername,
		SentinelPassword:      cfg.SentinelPassword,
		Username:              cfg.Username,
		Password:              cfg.Password,
		DB:                    cfg.DB,
		Dialer:                newDialer(t.dial, t.keepAlive, t.tls),
		DialTimeout:           t.dial,
		ReadTimeout:           t.read,
		WriteTimeout:          t.write,
		PoolTimeout:           t.pool,
		ContextTimeoutEnabled: true,
		PoolSize:              t.poolSize,
		MinIdleConns:          t.minIdle,
		MaxRetries:            t.maxRetries,
		DialerRetries:         t.dialRetries,
		DialerRetryTimeout:    dialerRetryTimeout,
		PipelinePoolSize:      noPipelinePool,
	}
}

func clusterOptions(cfg Config, t timeouts) *redis.ClusterOptions {
	return &redis.ClusterOptions{
		Addrs:                 cfg.Addrs,
		Username:              cfg.Username,
		Password:              cfg.Password,
		Dialer:                newDialer(t.dial, t.keepAlive, t.tls),
		DialTimeout:           t.dial,
		ReadTimeout:           t.read,
		WriteTimeout:          t.write,
		PoolTimeout:           t.pool,
		ContextTimeoutEnabled: true,
		PoolSize:              t.poolSize,
		MinIdleConns:          t.minIdle,
		MaxRetries:            t.maxRetries,
		DialerRetries:         t.dialRetries,
		DialerRetryTimeout:    dialerRetryTimeout,
		PipelinePoolSize:      noPipelinePool,

		ClusterStateReloadInterval: clusterStateReload,
	}
}
