package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/taskhost/taskhost/internal/config"
	"github.com/taskhost/taskhost/plugins"
)

// pluginInstance is one configured plugin and its host.
type pluginInstance struct {
	id      string
	p       plugins.Plugin
	host    *host
	started bool
}

// checkPlugins reports plugin IDs in the config that are not compiled in.
func checkPlugins(cfg config.Config) error {
	var problems []string
	for _, id := range sortedKeys(cfg.Plugins) {
		if _, ok := plugins.Lookup(id); !ok {
			problems = append(problems, fmt.Sprintf("plugins.%s: unknown plugin; compiled-in plugins are: %s",
				id, strings.Join(plugins.IDs(), ", ")))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", config.ErrInvalid, strings.Join(problems, "; "))
	}
	return nil
}

// CheckConfig checks cfg as far as Start would before it serves, without
// touching the network: the config itself, the plugin IDs, and each
// plugin's Provision and Validate, which decode and check the plugin's own
// section. The plugins are cleaned up and everything built is released. It
// returns an error matching config.ErrInvalid for a config problem, such as
// an unknown key under plugins.<id>. The outbox file, if any, is not opened.
func CheckConfig(ctx context.Context, cfg config.Config) error {
	cfg.Outbox.Path = "" // a running worker holds its lock
	r, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer func() { _ = r.Stop(ctx) }() // never started: releases the clients
	if err := r.provisionPlugins(ctx); err != nil {
		return err
	}
	r.cleanupPlugins()
	return nil
}

// provisionPlugins creates, provisions and validates each configured
// plugin, in ID order. If one fails, Cleanup runs on it and on those before
// it, in reverse order.
func (r *Runtime) provisionPlugins(ctx context.Context) error {
	for _, id := range sortedKeys(r.cfg.Plugins) {
		info, _ := plugins.Lookup(id) // checked by New
		inst := &pluginInstance{id: id, p: info.New(), host: newHost(r, id)}
		r.plugins = append(r.plugins, inst)
		if err := r.provisionOne(ctx, inst); err != nil {
			r.cleanupPlugins()
			return fmt.Errorf("plugin %s: %w", id, err)
		}
		r.log.Info("plugin provisioned", "component", "plugin", "plugin", id)
	}
	return nil
}

func (r *Runtime) provisionOne(ctx context.Context, inst *pluginInstance) error {
	if p, ok := inst.p.(plugins.Provisioner); ok {
		if err := p.Provision(ctx, inst.host); err != nil {
			return fmt.Errorf("provision: %w", err)
		}
	}
	if len(inst.host.errs) > 0 {
		return fmt.Errorf("provision: %w", errors.Join(inst.host.errs...))
	}
	if v, ok := inst.p.(plugins.Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("validate: %w", err)
		}
	}
	return nil
}

// startServices starts plugin services in order; if one fails, those
// already started are stopped in reverse order.
func (r *Runtime) startServices(ctx context.Context) error {
	for _, inst := range r.plugins {
		s, ok := inst.p.(plugins.Service)
		if !ok {
			continue
		}
		if err := s.Start(ctx); err != nil {
			_ = r.stopServices(ctx)
			return fmt.Errorf("plugin %s: start: %w", inst.id, err)
		}
		inst.started = true
		r.log.Info("plugin started", "component", "plugin", "plugin", inst.id)
	}
	return nil
}

// stopServices stops started plugin services in reverse order.
func (r *Runtime) stopServices(ctx context.Context) error {
	var errs []error
	for i := len(r.plugins) - 1; i >= 0; i-- {
		inst := r.plugins[i]
		if !inst.started {
			continue
		}
		inst.started = false
		if err := inst.p.(plugins.Service).Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("plugin %s: stop: %w", inst.id, err))
			r.log.Error("plugin stop failed", "component", "plugin", "plugin", inst.id, "error", err)
			continue
		}
		r.log.Info("plugin stopped", "component", "plugin", "plugin", inst.id)
	}
	return errors.Join(errs...)
}

// cleanupPlugins runs Cleanup on every provisioned plugin in reverse order,
// once.
func (r *Runtime) cleanupPlugins() {
	for i := len(r.plugins) - 1; i >= 0; i-- {
		if c, ok := r.plugins[i].p.(plugins.CleanerUpper); ok {
			if err := c.Cleanup(); err != nil {
				r.log.Warn("plugin cleanup failed", "component", "plugin", "plugin", r.plugins[i].id, "error", err)
			}
		}
	}
	r.plugins = nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
