package taskhost

import (
	"net/http"
	"net/http/pprof"

	"github.com/taskhost/taskhost/internal/ui"
)

// pprofPath is where health.pprof serves Go's profiles on the admin
// listener, as net/http/pprof names them.
const pprofPath = "/debug/pprof/"

// mountPprof serves Go's runtime profiles (net/http/pprof) under
// /debug/pprof/ on the admin mux when health.pprof is on. It is off by
// default: a CPU profile costs the worker while it runs, and the heap and
// goroutine profiles show the process's internals. On a loopback listener
// it answers requests addressed to a loopback name or IP; elsewhere config
// validation requires the ui.auth credentials, which every request must
// then present.
func (r *Runtime) mountPprof(mux *http.ServeMux) {
	if !r.cfg.Health.Pprof {
		return
	}
	pm := http.NewServeMux()
	pm.HandleFunc(pprofPath, pprof.Index)
	pm.HandleFunc(pprofPath+"cmdline", pprof.Cmdline)
	pm.HandleFunc(pprofPath+"profile", pprof.Profile)
	pm.HandleFunc(pprofPath+"symbol", pprof.Symbol)
	pm.HandleFunc(pprofPath+"trace", pprof.Trace)
	a := r.cfg.UI.Auth
	mux.Handle(pprofPath, ui.Protect(pm, ui.Auth{Username: a.Username, Password: a.Password, Token: a.Token}, r.log.With("component", "health")))
	r.log.Info("pprof profiles served on the admin listener", "component", "health", "path", pprofPath, "addr", r.cfg.Health.Addr)
}
