package taskhost

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/taskhost/taskhost/internal/health"
	"github.com/taskhost/taskhost/internal/ui"
)

// uiState is the dashboard's part of the Runtime (field ui).
type uiState struct {
	srv *http.Server // own listener when ui.addr is set
	ln  net.Listener
}

// uiListenAddr is the configured address the dashboard listens on.
func (r *Runtime) uiListenAddr() string {
	if r.cfg.UI.Addr != "" {
		return r.cfg.UI.Addr
	}
	return r.cfg.Health.Addr
}

// uiHandler builds the asynqmon dashboard on the application client. That
// client is a *redis.Client or *redis.ClusterClient, the types for which
// asynqmon serves its Redis info page (the queue client is wrapped, so it
// would lose that page), and it carries no retry throttle meant for asynq's
// loops. The dashboard never closes it; see internal/ui/conn.go.
func (r *Runtime) uiHandler() (http.Handler, error) {
	c := r.cfg.UI
	h, err := ui.New(ui.Options{
		Client:      r.rdb,
		ReadOnly:    c.ReadOnly,
		Auth:        ui.Auth{Username: c.Auth.Username, Password: c.Auth.Password, Token: c.Auth.Token},
		RequireAuth: !ui.IsLoopback(r.uiListenAddr()),
		Ready:       r.monitor.Ready,
		Logger:      r.log,
	})
	if err != nil {
		return nil, err // "ui: ..." names the problem
	}
	return h, nil
}

// mountUI mounts the dashboard at /ui on the health listener's mux when
// ui.enabled is set and ui.addr is empty; otherwise it does nothing.
func (r *Runtime) mountUI(mux *http.ServeMux) error {
	if !r.cfg.UI.Enabled || r.cfg.UI.Addr != "" {
		return nil
	}
	h, err := r.uiHandler()
	if err != nil {
		return err
	}
	mux.Handle(ui.Path+"/", h) // the mux redirects /ui to /ui/
	r.logUI(r.cfg.Health.Addr, "health.addr")
	return nil
}

// startUI listens on ui.addr before returning, so a taken port fails Start,
// then serves the dashboard in the background. It does nothing unless
// ui.enabled is set and ui.addr is not empty. "/" redirects to /ui/.
func (r *Runtime) startUI() error {
	if !r.cfg.UI.Enabled || r.cfg.UI.Addr == "" {
		return nil
	}
	h, err := r.uiHandler()
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(ui.Path+"/", h) // the mux redirects /ui to /ui/
	mux.Handle("GET /{$}", http.RedirectHandler(ui.Path+"/", http.StatusFound))
	ln, err := net.Listen("tcp", r.cfg.UI.Addr)
	if err != nil {
		return fmt.Errorf("ui.addr: listen on %s: %w", r.cfg.UI.Addr, err)
	}
	srv := health.NewServer(r.cfg.UI.Addr, mux)
	r.ui.ln, r.ui.srv = ln, srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("dashboard server failed", "component", "ui", "error", err)
		}
	}()
	r.logUI(ln.Addr().String(), "ui.addr")
	return nil
}

// stopUI shuts the dashboard's own listener down; safe to call when it was
// never started, and more than once.
func (r *Runtime) stopUI(ctx context.Context) {
	srv := r.ui.srv
	if srv == nil {
		return
	}
	r.ui.srv = nil
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		_ = srv.Close()
	}
}

// UIAddr is the address the dashboard answers on once started: its own
// listener's, or the health listener's when it is mounted there; "" when
// ui.enabled is off.
func (r *Runtime) UIAddr() string {
	switch {
	case !r.cfg.UI.Enabled:
		return ""
	case r.cfg.UI.Addr == "":
		return r.healthAddr()
	case r.ui.ln != nil:
		return r.ui.ln.Addr().String()
	}
	return ""
}

func (r *Runtime) logUI(addr, from string) {
	c := r.cfg.UI
	r.log.Info("dashboard enabled", "component", "ui", "path", ui.Path, "addr", addr, "listener", from,
		"read_only", c.ReadOnly, "auth", c.Auth.Username != "" || c.Auth.Token != "")
}
