package taskhost

import (
	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/internal/pluginhost"
)

// newPluginSet hosts the configured plugins on the runtime's shared
// components.
func (r *Runtime) newPluginSet() *pluginhost.Set {
	return pluginhost.New(pluginhost.Deps{
		Logger:       r.log,
		Sections:     r.cfg.Plugins,
		Mux:          r.queue.mux,
		Schedule:     r.schedulePlugin,
		Cache:        func(namespace string) cache.Store { return r.cache.Namespace(namespace) },
		Limiter:      r.limits.Limiter,
		LimiterRate:  r.limits.LimiterRate,
		NamedLimiter: r.limits.Named,
		Metrics:      r.metrics.Registerer(),
		AddCheck:     r.checks.Add,
		Enqueue:      (&Client{o: r.client}).EnqueueContext,
		Redis:        r.rdb,
	})
}
