package taskhost

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/internal/health"
	"github.com/taskhost/taskhost/internal/logswitch"
	"github.com/taskhost/taskhost/internal/metrics"
	"github.com/taskhost/taskhost/internal/outbox"
	"github.com/taskhost/taskhost/internal/redisconn"
	"github.com/taskhost/taskhost/ratelimit"
)

// New builds a runtime from cfg without touching the network: the Redis
// clients are lazy and the monitor starts with Start. The zero fields of a
// Config built in Go take their defaults (see Config.WithDefaults), so
//
//	taskhost.New(taskhost.Config{Redis: taskhost.RedisConfig{URL: os.Getenv("REDIS_URL")}}, taskhost.Options{})
//
// is enough. It returns an error matching ErrInvalidConfig, naming every bad
// key at once, for a bad config or an unknown plugin ID.
func New(cfg Config, opts Options) (*Runtime, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	traceSettings, err := resolveTracing(cfg)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		w := opts.LogOutput
		if w == nil {
			w = os.Stderr
		}
		log = NewLogger(cfg.Log, w)
	}
	logs, _ := log.Handler().(*logswitch.Handler) // reloadable when it came from NewLogger
	if traceSettings.Enabled || opts.TracerProvider != nil {
		log = traceLogger(log)
	}
	// go-redis logs each failed dial itself; route it to slog at DEBUG so an
	// outage is reported once, by the monitor. The logger is process-wide:
	// the first runtime's logger serves them all.
	setLibraryLogger.Do(func() { redis.SetLogger(redisconn.LibraryLogger(log)) })
	r := &Runtime{cfg: cfg, log: log, version: opts.Version, born: time.Now()}
	r.rl.init(cfg, opts.ConfigSource, logs)
	if redisconn.InsecureTLS(cfg.Redis.conn()) {
		log.Warn("redis.tls.insecure_skip_verify is on: the Redis server's certificate is not verified", "component", "redis")
	}

	clog := log.With("component", "redis")
	if r.rdb, err = redisconn.NewClient(cfg.Redis.conn(), redisconn.WithLogger(clog)); err != nil {
		return nil, fmt.Errorf("%w: redis: %v", ErrInvalidConfig, err)
	}
	qraw, err := redisconn.NewClient(queueTimeouts(cfg).conn(), redisconn.WithLogger(clog))
	if err != nil {
		_ = r.rdb.Close()
		return nil, fmt.Errorf("%w: redis: %v", ErrInvalidConfig, err)
	}
	// The monitor probes on a one-connection client of its own, so an
	// application that fills the shared pool is not mistaken for an outage.
	probeCfg := cfg.Redis
	probeCfg.PoolSize, probeCfg.MinIdleConns = 1, 0
	if r.probe, err = redisconn.NewClient(probeCfg.conn(), redisconn.WithLogger(clog)); err != nil {
		_ = r.rdb.Close()
		_ = qraw.Close()
		return nil, fmt.Errorf("%w: redis: %v", ErrInvalidConfig, err)
	}
	// asynq's lines during an outage fold into the monitor's (outagelog.go).
	r.fold = newOutageLog()
	monOpts := redisconn.MonitorOptionsFrom(cfg.Redis.conn(), log)
	monOpts.Annotate = r.fold.annotate
	r.monitor = redisconn.NewMonitor(r.probe, monOpts)
	// Failures and recoveries seen by either pool reach the monitor at once.
	r.rdb.AddHook(r.monitor.Hook())
	qraw.AddHook(r.monitor.Hook())
	r.rdb.AddHook(r.fold.hook())
	qraw.AddHook(r.fold.hook())
	r.qrdb = newQueueClient(qraw, r.monitor.Ready, func(ctx context.Context) bool {
		return r.monitor.Wait(ctx, redisconn.Ready) == nil
	})

	r.cache = cache.New(r.rdb, cache.Options{
		MaxValueBytes:    cfg.Cache.MaxValueBytes,
		MemoryMaxEntries: cfg.Cache.Memory.MaxEntries,
		Logger:           log,
		Watch:            r.watchReady,
	})
	if r.limits, err = ratelimit.New(r.rdb, ratelimit.Options{Limits: cfg.RateLimit.Limits, Logger: log, Watch: r.watchReady}); err != nil {
		r.closeEarly()
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if len(cfg.RateLimit.Tasks) > 0 {
		if r.taskLimit, err = r.limits.TaskMiddleware(cfg.RateLimit.Tasks); err != nil {
			r.closeEarly()
			return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
	}
	if err := r.startTracing(context.Background(), traceSettings, opts); err != nil {
		r.closeEarly()
		return nil, err
	}
	r.checks = health.NewRegistry(cfg.Health.Timeout)
	r.metrics = metrics.New()
	r.tasks.next = r.metrics
	r.queue = newQueue(r.qrdb, cfg, slog.New(r.fold.handler(log.Handler())), r.tracer)
	if err := r.addConfigSchedules(); err != nil {
		r.closeEarly()
		return nil, err
	}

	var store outbox.Store
	if cfg.Outbox.Path != "" {
		fs, err := outbox.OpenFile(cfg.Outbox.Path, outbox.WithLogger(log))
		if err != nil {
			r.closeEarly()
			return nil, fmt.Errorf("outbox.path: %w", err)
		}
		store = fs
	}
	r.client, err = outbox.New(asynq.NewClientFromRedisClient(r.rdb), r.monitor.Ready, outbox.Options{
		Store:     store,
		MaxTasks:  cfg.Outbox.MaxTasks,
		MaxBytes:  cfg.Outbox.MaxBytes,
		DrainRate: cfg.Outbox.DrainRate,
		Logger:    log,
		Tracer:    r.tracer,

		MaxPayloadBytes: cfg.Worker.MaxPayloadBytes,
	})
	if err != nil {
		r.closeEarly()
		return nil, fmt.Errorf("outbox: %w", err)
	}
	r.plugins = r.newPluginSet()
	if err := r.registerObservability(); err != nil {
		_ = r.client.Close()
		r.closeEarly()
		return nil, err
	}
	return r, nil
}

var setLibraryLogger sync.Once

// closeEarly releases what New built before it failed.
func (r *Runtime) closeEarly() {
	if r.limits != nil {
		_ = r.limits.Close()
	}
	if r.cache != nil {
		r.cache.Close()
	}
	_ = r.qrdb.Close()
	_ = r.rdb.Close()
	_ = r.probe.Close()
	r.stopTracing()
}
