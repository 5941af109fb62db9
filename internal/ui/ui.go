package ui

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"
)

// Path is where the dashboard is served. Mount the handler at Path+"/" of
// an http.ServeMux, which redirects Path to Path+"/"; the app's navigation
// expects the trailing slash.
const Path = "/ui"

// apiPrefix is the path of asynqmon's JSON API, under Path.
const apiPrefix = Path + "/api/"

var (
	// ErrNoClient is returned by New without a Redis client.
	ErrNoClient = errors.New("ui: a Redis client is required")
	// ErrNoAuth is returned by New when RequireAuth is set and no
	// credentials are configured (config validation refuses this first).
	ErrNoAuth = errors.New("ui: authentication is required on a listener that is not loopback: set ui.auth.username and ui.auth.password, or ui.auth.token")
	// ErrHalfBasic is returned by New when only one of Auth.Username and
	// Auth.Password is set.
	ErrHalfBasic = errors.New("ui: basic auth needs both ui.auth.username and ui.auth.password")
)

// Options configure the dashboard handler.
type Options struct {
	// Client is the runtime's shared Redis client. The dashboard never
	// closes it. Pass a *redis.Client or *redis.ClusterClient (what
	// redisconn builds): asynqmon serves its Redis info page only for those
	// concrete types.
	Client redis.UniversalClient
	// ReadOnly refuses, with 403, every request that is not GET or HEAD:
	// no task can be deleted, run, archived or cancelled, and no queue
	// paused or deleted. asynqmon also hides its action buttons.
	ReadOnly bool
	// Auth holds the credentials. When any is set, every request to the
	// dashboard must present them, loopback or not.
	Auth Auth
	// RequireAuth is set when the dashboard's listener is not loopback. New
	// fails with ErrNoAuth if Auth is empty. When it is not set and Auth is
	// empty, the dashboard is open, but answers only requests whose Host is
	// a loopback name, so that a web page cannot read it by DNS rebinding.
	RequireAuth bool
	// Ready reports whether Redis is ready. While it is not, the API answers
	// 503 at once rather than waiting on Redis timeouts. Nil means always.
	Ready func() bool
	// PrometheusAddress is the base URL of a Prometheus server whose query
	// API (/api/v1/query_range) holds asynq's own metrics (asynq_queue_size,
	// asynq_tasks_processed_total, ...), as exported by asynq's metrics
	// package. asynqmon then shows a Metrics page with charts. Empty hides
	// the page. It cannot be taskhost's /metrics: that endpoint is a scrape
	// target, not a query API, and its series are named taskhost_*.
	PrometheusAddress string
	// Logger receives refused logins at DEBUG; slog.Default when nil.
	Logger *slog.Logger
}

// New returns the dashboard handler, to be mounted at Path+"/".
// Requests pass, in order: security headers, authentication (or, for an
// open loopback dashboard, the Host check), cross-origin protection of
// non-safe methods, the read-only guard, the readiness guard, then asynqmon.
func New(opts Options) (http.Handler, error) {
	if opts.Client == nil {
		return nil, ErrNoClient
	}
	if opts.RequireAuth && opts.Auth.empty() {
		return nil, ErrNoAuth
	}
	if (opts.Auth.Username == "") != (opts.Auth.Password == "") {
		return nil, ErrHalfBasic
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "ui")
	if opts.PrometheusAddress != "" && !strings.HasPrefix(opts.PrometheusAddress, "http://") &&
		!strings.HasPrefix(opts.PrometheusAddress, "https://") {
		return nil, fmt.Errorf("ui: prometheus address %q: want an http:// or https:// URL", opts.PrometheusAddress)
	}

	// The asynqmon handler stays inside the returned chain, so nothing can
	// call its Close, which would close the shared client (see sharedConn).
	mon := asynqmon.New(asynqmon.Options{
		RootPath:          Path,
		RedisConnOpt:      sharedConn{client: opts.Client},
		ReadOnly:          opts.ReadOnly,
		PrometheusAddress: opts.PrometheusAddress,
	})

	var h http.Handler = mon
	if opts.Ready != nil {
		h = readyGuard(opts.Ready, h)
	}
	if opts.ReadOnly {
		h = readOnlyGuard(h)
	}
	h = http.NewCrossOriginProtection().Handler(h)
	switch {
	case !opts.Auth.empty():
		h = authenticate(opts.Auth, log, h)
	default: // an open dashboard on a loopback listener
		h = loopbackHostOnly(h)
	}
	return securityHeaders(h), nil
}

// isAPI reports whether r is for asynqmon's JSON API.
func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, apiPrefix) }

// readOnlyGuard refuses, with 403, every request that is not GET or HEAD;
// the app itself sends others only to change tasks or queues. asynqmon's
// own ReadOnly option answers 405 through a gorilla/mux middleware that runs
// only for the API routes it matches (handler.go:210-213); this guard does
// not depend on its routing.
func readOnlyGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "the dashboard is read-only (ui.read_only: true): "+r.Method+" is not allowed", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readyGuard answers API requests with 503 while Redis is not ready.
func readyGuard(ready func() bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isAPI(r) && !ready() {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "redis is not ready", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// securityHeaders forbids framing (clickjacking of the action buttons) and
// MIME sniffing.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if isAPI(r) {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}
