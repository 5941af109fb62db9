package taskhost

import (
	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/internal/outbox"
	"github.com/taskhost/taskhost/internal/pluginhost"
)

// newPluginSet hosts the configured plugins on the runtime's shared
// components.
func (r *Runtime) newPluginSet() *pluginhost.Set {
	return pluginhost.New(pluginhost.Deps{
		Logger:   r.log,
		Sections: r.cfg.Plugins,
		Mux:      r.queue.mux,
		Schedule: func(_, cronspec string, task *asynq.Task, opts ...asynq.Option) (string, error) {
			if err := outbox.CheckPayload(task, r.cfg.Worker.MaxPayloadBytes); err != nil {
				return "", err
			}
			return r.queue.scheduler.Register(cronspec, r.scheduled(task), opts...)
		},
		Cache:        func(namespace string) cache.Store { return r.cache.Namespace(namespace) },
		Limiter:      r.limits.Limiter,
		LimiterRate:  r.limits.LimiterRate,
		NamedLimiter: r.limits.Named,
		Metrics:      r.metrics.Registerer(),
		AddCheck:     r.checks.Add,
		Enqueue:      r.client.EnqueueContext,
	})
}
