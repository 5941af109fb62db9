package taskhost

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/config"
	"github.com/taskhost/taskhost/plugins"
)

// brokenPlugin fails Provision with an error that is not about config.
type brokenPlugin struct{}

func (brokenPlugin) PluginInfo() plugins.Info {
	return plugins.Info{ID: "broken", New: func() plugins.Plugin { return brokenPlugin{} }}
}
func (brokenPlugin) Provision(context.Context, plugins.Host) error {
	return errors.New("cannot open /var/lib/broken")
}

func init() { plugins.Register(brokenPlugin{}) }

// TestConfigErrorsInOneRound: the core keys, the unknown plugin IDs and
// each plugin's own keys come back in one error, in key order.
func TestConfigErrorsInOneRound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	path := b.file(t, `
worker: {concurrency: 0}
health: {addr: nowhere}
plugins:
  webhok: {}
  webhook: {timout: 1s, timeout: ten}
`)
	_, err := LoadConfig(LoadOptions{Path: path, Environ: noEnv, CheckPlugins: true})
	require.ErrorIs(t, err, ErrInvalidConfig)
	var ce *config.Error
	require.ErrorAs(t, err, &ce)
	var keys []string
	for _, p := range ce.Problems {
		keys = append(keys, p.Key)
	}
	require.Equal(t, []string{
		"worker.concurrency", "health.addr",
		"plugins.webhok", "plugins.webhook.timeout", "plugins.webhook.timout",
	}, keys, "%v", err)
	require.Contains(t, err.Error(), "plugins.webhok: unknown plugin; compiled-in plugins are: ")
	require.Contains(t, err.Error(), ", webhook")
	require.NotContains(t, err.Error(), "invalid configuration: plugins.webhook", "each key once")

	// Without CheckPlugins (worker enqueue), plugins are not checked.
	_, err = LoadConfig(LoadOptions{Path: path, Environ: noEnv})
	require.ErrorAs(t, err, &ce)
	require.Len(t, ce.Problems, 2)
}

// TestCheckConfigKeepsOtherErrorsApart: a plugin that fails for a reason
// other than its config is reported as such, not as a config problem.
func TestCheckConfigKeepsOtherErrorsApart(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Plugins = map[string]map[string]any{"broken": {}, "webhook": {"timeout": "0s"}}
	err := CheckConfig(t.Context(), cfg)
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, "plugins.webhook.timeout: 0s is not positive")
	require.ErrorContains(t, err, "cannot open /var/lib/broken")

	cfg.Plugins = map[string]map[string]any{"broken": {}}
	err = CheckConfig(t.Context(), cfg)
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrInvalidConfig, "not a config error: exit 1")

	cfg.Plugins = map[string]map[string]any{"webhook": {}}
	require.NoError(t, CheckConfig(t.Context(), cfg))
}
