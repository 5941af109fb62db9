package pluginhost

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/internal/config"
	"github.com/taskhost/taskhost/internal/health"
	"github.com/taskhost/taskhost/plugins"
	"github.com/taskhost/taskhost/ratelimit"
)

// errDryRun answers Enqueue on a dry-run host.
var errDryRun = errors.New("enqueue is not available while the config is checked")

// DryRun provisions and validates each compiled-in plugin that sections
// holds, and cleans it up, on a host that reaches nothing outside the
// process: an in-memory cache and limiters, a scheduler and a health
// registry that only check what they are given, no enqueue. An ID that is
// not compiled in is skipped (Config.Validate reports it). limits are the
// worker's ratelimit.limits, for NamedLimiter.
//
// Every plugin runs, whatever the others report. The config problems of all
// of them come back together, keyed as the plugins name them; errors that
// are not about configuration come back apart. The returned Set knows the
// task types and task defaults that the plugins registered.
func DryRun(ctx context.Context, sections map[string]map[string]any, limits map[string]string) (*Set, config.Problems, []error) {
	reg, err := ratelimit.New(nil, ratelimit.Options{Limits: limits, Logger: slog.New(slog.DiscardHandler)})
	if err != nil { // the config's own check reports bad rates
		reg, _ = ratelimit.New(nil, ratelimit.Options{Logger: slog.New(slog.DiscardHandler)})
	}
	defer func() { _ = reg.Close() }()
	mem := cache.NewMemory(cache.Options{})
	defer mem.Close()
	checks := health.NewRegistry(0)
	// A plugin's Redis calls fail at once during a dry run: the client is
	// closed before anything can dial.
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:0"})
	_ = down.Close()

	s := New(Deps{
		Logger:   slog.New(slog.DiscardHandler),
		Sections: sections,
		Mux:      asynq.NewServeMux(),
		Schedule: func(string, string, *asynq.Task, ...asynq.Option) error { return nil },
		Cache: func(ns string) cache.Store {
			if cache.ValidateNamespace(ns) != nil {
				return mem.Namespace("invalid")
			}
			return mem.Namespace(ns)
		},
		Limiter:      reg.Limiter,
		LimiterRate:  reg.LimiterRate,
		NamedLimiter: reg.Named,
		Metrics:      prometheus.NewRegistry(),
		AddCheck:     checks.Add,
		Enqueue: func(context.Context, *asynq.Task, ...asynq.Option) (*asynq.TaskInfo, error) {
			return nil, errDryRun
		},
		Redis: down,
	})
	var ps config.Problems
	var rest []error
	for _, id := range slices.Sorted(maps.Keys(sections)) {
		info, ok := plugins.Lookup(id)
		if !ok {
			continue
		}
		err := s.Provision(ctx, id, info.New())
		rest = append(rest, config.Collect(&ps, err, config.PluginsKey+"."+id, rekeyPluginError)...)
	}
	s.Cleanup()
	return s, ps, rest
}

// rekeyPluginError reads a plugin's *ConfigError as problems at its key.
func rekeyPluginError(err error) (config.Problems, bool) {
	if pe, ok := err.(*plugins.ConfigError); ok {
		return config.Rekey(pe.Key, pe.Err), true
	}
	return nil, false
}
