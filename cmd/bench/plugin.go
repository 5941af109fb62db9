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

func init() { plugins.Register(benchPlugin{}) }

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
type benchPlugin struct{}

var (
	_ plugins.Plugin      = benchPlugin{}
	_ plugins.Provisioner = benchPlugin{}
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

func (benchPlugin) PluginInfo() plugins.Info {
	return plugins.Info{ID: pluginID, New: func() plugins.Plugin { return benchPlugin{} }}
}

func (benchPlugin) Provision(_ context.Context, h plugins.Host) error {
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
