package taskhost

import (
	"context"
	"errors"
	"log/slog"

	"github.com/taskhost/taskhost/internal/config"
	"github.com/taskhost/taskhost/internal/pluginhost"
	"github.com/taskhost/taskhost/plugins"
)

// checkPlugins adds to ps the plugin IDs that are not compiled in and the
// problems that each compiled-in plugin finds in its own section, by
// provisioning it on a host that reaches nothing outside the process (see
// pluginhost.DryRun). It returns the plugins' errors that are not about
// configuration.
func (c Config) checkPlugins(ctx context.Context, ps *config.Problems) []error {
	c.checkPluginIDs(ps)
	ctx, cancel := context.WithTimeout(ctx, plugins.DefaultTimeout)
	defer cancel()
	_, pps, rest := pluginhost.DryRun(ctx, c.Plugins, c.RateLimit.Limits)
	*ps = append(*ps, pps...)
	return rest
}

// CheckConfig checks cfg as far as Start would before it serves, without
// touching the network, and reports every problem at once: the config's
// own keys, the plugin IDs, and each plugin's section, which its Provision
// and Validate decode and check (on a host of in-memory stand-ins; each
// plugin is cleaned up). A config problem matches ErrInvalidConfig. Then the
// runtime is built and released, as New would build it, after checking that
// a plugin handles each schedules entry's type; the outbox file, if any, is
// not opened.
func CheckConfig(ctx context.Context, cfg Config) error {
	ps := cfg.problems()
	rest := cfg.checkPlugins(ctx, &ps)
	if err := errors.Join(append([]error{ps.Err(keyRank)}, rest...)...); err != nil {
		return err
	}
	cfg.Outbox.Path = "" // a running worker holds its lock
	r, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer func() { _ = r.Stop(ctx) }() // never started: releases the clients
	// A schedules entry needs a plugin that handles its type.
	if err := r.plugins.ProvisionAll(ctx); err != nil {
		return err
	}
	defer r.plugins.Cleanup()
	return r.checkScheduleTypes(r.cfg)
}

// builtinPlugins are the plugins that ship with taskhost, and their -dev
// sections.
var builtinPlugins = map[string]map[string]any{
	"webhook": {"allow_hosts": []any{"127.0.0.0/8", "::1"}}, // -dev delivers to local receivers
	"canary":  {},
}

// devPlugins is the -dev overlay's plugins section: the built-in plugins
// that this binary compiles in. A binary without them does not get a
// section it could not run.
func devPlugins() map[string]any {
	out := map[string]any{}
	for id, section := range builtinPlugins {
		if _, ok := plugins.Lookup(id); ok {
			out[id] = config.CopyAny(section)
		}
	}
	return out
}
