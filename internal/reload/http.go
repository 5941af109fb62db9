package reload

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
)

// Path is where the admin listener takes reload requests.
const Path = "/reload"

// Handler serves POST /reload, the request `worker reload` sends: it calls
// fn and writes its answer, a status and a body encoded as JSON.
//
// It is guarded, since the admin listener may listen beyond loopback for
// probes: only POST; only from a loopback address (run `worker reload` on
// the worker's host, or in its container); and never from a browser page
// (a request with an Origin header is refused, so a web page on the
// operator's machine cannot trigger a reload).
func Handler(fn func(ctx context.Context) (status int, body any)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		switch {
		case r.Method != http.MethodPost:
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "reload takes POST"})
			return
		case !fromLoopback(r):
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "reload is taken from loopback only: run `worker reload` on the worker's host"})
			return
		case r.Header.Get("Origin") != "":
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "reload is not taken from a browser"})
			return
		}
		status, body := fn(r.Context())
		writeJSON(w, status, body)
	})
}

func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.MarshalIndent(body, "", "  ")
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"cannot encode the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
