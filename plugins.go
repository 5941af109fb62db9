package taskhost

import (
	"context"
	"log/slog"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/internal/pluginhost"
)

// newPluginSet hosts the configured plugins on the runtime's shared
// components.
func (r *Runtime) newPluginSet() *pluginhost.Set {
	return pluginhost.New(pluginhost.Deps{
		Logger:   r.log,
		Sections: r.cfg.Plugins,
		Mux:      r.queue.mux,
		Schedule: r.schedulePlugin,
		Cache:    func(namespace string) cache.Store { return r.cache.Namespace(namespace) },
		Limiter:  r.limits.Limiter,
		AddCheck: r.checks.Add,
		Enqueue:  r.client.EnqueueContext,
	})
}

// CheckConfig checks cfg as far as Start would before it serves, without
// touching the network: the config itself, the plugin IDs, and each
// plugin's Provision and Validate, which decode and check the plugin's own
// section; and that a plugin handles each schedules entry's type. The
// plugins are cleaned up and everything built is released. A
// config problem matches ErrInvalidConfig. The outbox file, if any, is not
// opened.
func CheckConfig(ctx context.Context, cfg Config) error {
	cfg.Outbox.Path = "" // a running worker holds its lock
	r, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer func() { _ = r.Stop(ctx) }() // never started: releases the clients
	if err := r.plugins.ProvisionAll(ctx); err != nil {
		return err
	}
	defer r.plugins.Cleanup()
	return r.checkScheduleTypes(r.cfg)
}
