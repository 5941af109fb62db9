package health

import (
	"log/slog"
	"net/http"
	"time"
)

// NewServer returns an http.Server for h on addr with the timeouts and
// header limit a probe listener needs. Requests are tiny and answers take at
// most the probe timeout, so the limits are tight.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 2 * time.Second,
		ReadTimeout:       5 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(slog.Default().With("component", "healthcheck").Handler(), slog.LevelWarn),
	}
}
