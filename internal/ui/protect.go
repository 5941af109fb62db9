package ui

import (
	"log/slog"
	"net/http"
)

// Protect guards an admin handler other than the dashboard (the pprof
// endpoints) as the dashboard is guarded: with credentials, every request
// must present them (basic auth or bearer token); without, it answers only
// requests addressed to localhost or a loopback IP, which is safe only on a
// loopback listener (config validation requires credentials elsewhere).
func Protect(next http.Handler, a Auth, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	if a.empty() {
		return securityHeaders(loopbackHostOnly(next))
	}
	return securityHeaders(authenticate(a, log, next))
}
