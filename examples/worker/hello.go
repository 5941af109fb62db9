package main

import (
	"context"

	"github.com/taskhost/taskhost/plugins"
)

// hello is this team's own plugin, compiled into its worker. Enable it with
// a plugins.hello section in config.yaml (or PLUGINS_HELLO_GREETING).
type hello struct {
	cfg struct {
		Greeting string `koanf:"greeting"`
	}
}

func (*hello) PluginInfo() plugins.Info {
	return plugins.Info{ID: "hello", New: func() plugins.Plugin { return &hello{} }}
}

func (p *hello) Provision(_ context.Context, h plugins.Host) error {
	p.cfg.Greeting = "hello"
	if err := h.DecodeConfig(&p.cfg); err != nil {
		return err
	}
	plugins.Handle(h, "hello:say", func(_ context.Context, a struct {
		Name string `json:"name"`
	}) error {
		h.Logger().Info(p.cfg.Greeting+", "+a.Name, "name", a.Name)
		return nil
	})
	return nil
}

func init() { plugins.Register(&hello{}) }
