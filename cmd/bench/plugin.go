package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"sync/atomic"

	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost/plugins"
)

// pluginID is the bench plugin's ID, enabled by plugins.bench in the config.
const pluginID = "bench"

func init() { plugins.Register(&benchPlugin{}) }

// benchPlugin registers the probe for taskType through the real plugin
// host, so that the task runs through every runtime middleware.
//
// In library mode (-taskhost library) the child sets the probe before it
// builds the runtime. In binary mode the worker command builds the runtime
// from a config file, and the plugin makes its own probe from its section:
//
//	plugins:
//	  bench:
//	    n: 50000          # report after n tasks (0: never)
//	    record: false     # record each task's start latency
//	    cpuprofile: ""    # CPU profile file, from the first task to the n-th
//
// It then writes the "done" event on the process's stdout, on which the
// worker command writes nothing else.
// benchPlugin holds the CPU profile it started, which Cleanup stops: the
// worker provisions plugins twice (a config check on a stand-in host, then
// for real), and Go runs one CPU profile at a time.
type benchPlugin struct{ stopProfile func() }

var (
	_ plugins.Plugin       = (*benchPlugin)(nil)
	_ plugins.Provisioner  = (*benchPlugin)(nil)
	_ plugins.CleanerUpper = (*benchPlugin)(nil)
)

// handler is the child's probe in library mode; the registry builds plugin
// instances itself, so they find it here.
var handler atomic.Pointer[asynq.Handler]

func setPluginHandler(h asynq.Handler) { handler.Store(&h) }

// pluginConfig is the plugin's section in binary mode.
type pluginConfig struct {
	N          int    `koanf:"n"`
	Record     bool   `koanf:"record"`
	CPUProfile string `koanf:"cpuprofile"`
}

func (*benchPlugin) PluginInfo() plugins.Info {
	return plugins.Info{ID: pluginID, New: func() plugins.Plugin { return &benchPlugin{} }}
}

// Cleanup stops the CPU profile if it still runs.
func (b *benchPlugin) Cleanup() error {
	if b.stopProfile != nil {
		b.stopProfile()
	}
	return nil
}

func (b *benchPlugin) Provision(_ context.Context, h plugins.Host) error {
	var cfg pluginConfig
	if err := h.DecodeConfig(&cfg); err != nil {
		return err
	}
	if p := handler.Load(); p != nil {
		h.HandleFunc(taskType, (*p).ProcessTask)
		return nil
	}
	if cfg.N < 0 {
		return errors.New("bench plugin: n must be >= 0")
	}
	p := newProbe(cfg.N, cfg.Record)
	stopProfile, err := startProfile(cfg.CPUProfile)
	if err != nil {
		return err
	}
	b.stopProfile = stopProfile
	h.HandleFunc(taskType, p.ProcessTask)
	if cfg.N > 0 {
		go func() {
			<-p.done
			stopProfile()
			_ = json.NewEncoder(os.Stdout).Encode(p.report())
		}()
	}
	return nil
}
