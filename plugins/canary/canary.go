package canary

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/healthcheck"
	"github.com/taskhost/taskhost/plugins"
)

// ID is the plugin's ID and config key, plugins.canary.
const ID = "canary"

// TaskType is the type of the scheduled task.
const TaskType = "canary:tick"

// CheckName is the name of the health check, reported under the plugin ID.
const CheckName = "tick"

// Defaults of plugins.canary.
const (
	DefaultEvery      = "@every 30s"
	DefaultStaleAfter = 2 * time.Minute
)

// lastTickKey is the cache key of the last tick's time.
const lastTickKey = "last_tick"

func init() { plugins.Register(&Canary{}) }

var (
	_ plugins.Plugin      = (*Canary)(nil)
	_ plugins.Provisioner = (*Canary)(nil)
	_ plugins.Validator   = (*Canary)(nil)
	_ plugins.Reloader    = (*Canary)(nil)
)

// Config is plugins.canary.
type Config struct {
	Every      string        `koanf:"every"`       // cron spec of the tick
	StaleAfter time.Duration `koanf:"stale_after"` // the check fails past this age
}

// Tick is the canary:tick payload. It is empty: the time of the tick is the
// time it is handled.
type Tick struct{}

// Canary is the canary plugin. Its zero value is ready to be provisioned.
type Canary struct {
	cfg     Config
	stale   atomic.Int64 // cfg.StaleAfter, which Reload changes
	cache   cache.Store
	log     *slog.Logger
	started time.Time
	now     func() time.Time
}

// PluginInfo registers the plugin as "canary".
func (*Canary) PluginInfo() plugins.Info {
	return plugins.Info{ID: ID, New: func() plugins.Plugin { return &Canary{} }}
}

// Provision decodes plugins.canary, registers the tick handler, schedules
// the tick and adds the health check.
func (c *Canary) Provision(ctx context.Context, h plugins.Host) error {
	c.cfg = Config{Every: DefaultEvery, StaleAfter: DefaultStaleAfter}
	if err := h.DecodeConfig(&c.cfg); err != nil {
		return err
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.stale.Store(int64(c.cfg.StaleAfter))
	c.cache = h.Cache()
	c.log = h.Logger()
	c.started = c.now()

	plugins.Handle(h, TaskType, c.tick)
	task, err := plugins.NewTask(TaskType, Tick{})
	if err != nil {
		return err
	}
	// A failed tick is not retried: the next one comes soon enough.
	if _, err := h.Schedule(c.cfg.Every, task, asynq.MaxRetry(0), asynq.Timeout(10*time.Second)); err != nil {
		if errors.Is(err, plugins.ErrInvalidConfig) { // a bad spec: name the key it came from
			return &plugins.ConfigError{Key: "plugins." + ID + ".every", Err: err}
		}
		return err
	}
	h.AddCheck(healthcheck.Check{
		Name:     CheckName,
		Critical: false,
		Timeout:  time.Second,
		Run:      c.check,
	})
	return nil
}

// Validate checks the settings.
func (c *Canary) Validate() error {
	if c.cfg.StaleAfter <= 0 {
		return &plugins.ConfigError{Key: "plugins." + ID + ".stale_after", Err: fmt.Errorf("%s is not positive", c.cfg.StaleAfter)}
	}
	return nil
}

// Reload applies a new plugins.canary: stale_after changes at once; every
// (the schedule) needs a restart, so a change of it is refused.
func (c *Canary) Reload(_ context.Context, h plugins.Host) error {
	cfg := Config{Every: DefaultEvery, StaleAfter: DefaultStaleAfter}
	if err := h.DecodeConfig(&cfg); err != nil {
		return err
	}
	if cfg.Every != c.cfg.Every {
		return &plugins.ConfigError{Key: "plugins." + ID + ".every", Err: errors.New("changing the schedule needs a restart")}
	}
	if cfg.StaleAfter <= 0 {
		return &plugins.ConfigError{Key: "plugins." + ID + ".stale_after", Err: fmt.Errorf("%s is not positive", cfg.StaleAfter)}
	}
	c.stale.Store(int64(cfg.StaleAfter))
	return nil
}

func (c *Canary) staleAfter() time.Duration { return time.Duration(c.stale.Load()) }

// tick stores the time it ran.
func (c *Canary) tick(ctx context.Context, _ Tick) error {
	now := c.now()
	ttl := max(10*c.staleAfter(), time.Hour)
	if err := c.cache.Set(ctx, lastTickKey, []byte(now.UTC().Format(time.RFC3339Nano)), ttl); err != nil {
		return fmt.Errorf("canary: store tick: %w", err)
	}
	return nil
}

// ErrStale is returned by the health check when the last tick is too old.
var ErrStale = errors.New("canary: last tick is stale")

// check fails when no tick ran within stale_after.
func (c *Canary) check(ctx context.Context) error {
	now := c.now()
	v, err := c.cache.Get(ctx, lastTickKey)
	if errors.Is(err, cache.ErrNotFound) {
		if age := now.Sub(c.started); age > c.staleAfter() {
			return fmt.Errorf("%w: no tick in %s since start", ErrStale, age.Round(time.Second))
		}
		return nil // still starting
	}
	if err != nil {
		return fmt.Errorf("canary: read last tick: %w", err)
	}
	last, err := time.Parse(time.RFC3339Nano, string(v))
	if err != nil {
		return fmt.Errorf("canary: last tick %q: %w", v, err)
	}
	if age := now.Sub(last); age > c.staleAfter() {
		return fmt.Errorf("%w: last tick %s ago, at %s", ErrStale, age.Round(time.Second), last.Format(time.RFC3339))
	}
	return nil
}
