package main

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost/plugins"
)

// pluginID is the bench plugin's ID, enabled by plugins.bench in the config.
const pluginID = "bench"

func init() { plugins.Register(benchPlugin{}) }

// benchPlugin registers the probe for taskType through the real plugin
// host, so that the task runs through every runtime middleware.
type benchPlugin struct{}

var (
	_ plugins.Plugin      = benchPlugin{}
	_ plugins.Provisioner = benchPlugin{}
)

// handler is the child's probe; the registry builds plugin instances
// itself, so they find it here.
var handler atomic.Pointer[asynq.Handler]

func setPluginHandler(h asynq.Handler) { handler.Store(&h) }

func (benchPlugin) PluginInfo() plugins.Info {
	return plugins.Info{ID: pluginID, New: func() plugins.Plugin { return benchPlugin{} }}
}

func (benchPlugin) Provision(_ context.Context, h plugins.Host) error {
	var cfg struct{}
	if err := h.DecodeConfig(&cfg); err != nil {
		return err
	}
	p := handler.Load()
	if p == nil {
		return errors.New("bench plugin: no handler set")
	}
	h.HandleFunc(taskType, (*p).ProcessTask)
	return nil
}
