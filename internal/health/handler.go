package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure a Handler. The zero value serves an empty registry,
// always live and ready, with DetailFull and DefaultTimeout.
type Options struct {
	// Registry holds the checks /healthz runs; nil means an empty one.
	Registry *Registry
	// Source fills /healthz's sections.
	Source Source
	// Live answers /livez: nil when the process and its loops are alive.
	// It must not touch Redis. Nil means always live.
	Live func() error
	// Ready answers /readyz: true when Redis is ready and the queue server
	// runs, else false and a one-line reason. Nil means always ready.
	Ready func() (ready bool, reason string)
	// Gatherer is served at /metrics; nil means /metrics is 404.
	Gatherer prometheus.Gatherer
	// Timeout is health.timeout: no probe takes longer. Zero means DefaultTimeout.
	Timeout time.Duration
	// Detail is health.detail; "" means DetailFull.
	Detail Detail
	// Version is taskhost's version for the report.
	Version string
	// StartedAt is when the process started; zero means when NewHandler ran.
	StartedAt time.Time
	// Logger gets one line per change of the overall status; nil means slog.Default().
	Logger *slog.Logger
}

// MaxBodyBytes caps a request body; the endpoints read none.
const MaxBodyBytes = 1 << 10

// Handler serves /livez, /readyz, /healthz and /metrics.
type Handler struct {
	opts    Options
	metrics http.Handler
	log     *slog.Logger

	live       flight[struct{}]
	ready      flight[readiness]
	connection flight[Connection]
	ping       flight[time.Duration]
	redis      flight[RedisInfo]
	queues     flight[[]Queue]
	fallbacks  flight[[]Fallback]
	fleet      flight[Fleet]
	schedules  flight[[]Schedule]
	warnings   flight[[]string]
	config     flight[ConfigInfo]

	mu         sync.Mutex
	lastStatus Status
}

type readiness struct {
	ok     bool
	reason string
}

// NewHandler returns a Handler for opts.
func NewHandler(opts Options) *Handler {
	if opts.Registry == nil {
		opts.Registry = NewRegistry(opts.Timeout)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Detail == "" {
		opts.Detail = DetailFull
	}
	if opts.StartedAt.IsZero() {
		opts.StartedAt = time.Now()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &Handler{opts: opts, log: opts.Logger.With("component", "healthcheck")}
	if opts.Gatherer != nil {
		h.metrics = promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
			ErrorLog:            slog.NewLogLogger(h.log.Handler(), slog.LevelWarn),
			ErrorHandling:       promhttp.ContinueOnError,
			MaxRequestsInFlight: 4,
			Timeout:             h.budget(),
		})
	}
	return h
}

// budget is how long a probe may wait for its checks and sources: the
// timeout less a margin for writing the answer (5%, at most 50ms).
func (h *Handler) budget() time.Duration {
	return h.opts.Timeout - min(h.opts.Timeout/20, 50*time.Millisecond)
}

// ServeHTTP routes the four endpoints; any other path is 404 and any method
// but GET or HEAD is 405.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	switch r.URL.Path {
	case "/livez", "/readyz", "/healthz":
	case "/metrics":
		if h.metrics == nil {
			http.NotFound(w, r)
			return
		}
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch r.URL.Path {
	case "/livez":
		h.serveLive(w, r)
	case "/readyz":
		h.serveReady(w, r)
	case "/healthz":
		h.serveReport(w, r)
	case "/metrics":
		h.metrics.ServeHTTP(w, r)
	}
}

func (h *Handler) serveLive(w http.ResponseWriter, r *http.Request) {
	if err := h.Live(r.Context()); err != nil {
		text(w, http.StatusServiceUnavailable, "not live: "+oneLine(err.Error()))
		return
	}
	text(w, http.StatusOK, "ok")
}

func (h *Handler) serveReady(w http.ResponseWriter, r *http.Request) {
	if ok, reason := h.Ready(r.Context()); !ok {
		text(w, http.StatusServiceUnavailable, "not ready: "+oneLine(reason))
		return
	}
	text(w, http.StatusOK, "ok")
}

func (h *Handler) serveReport(w http.ResponseWriter, r *http.Request) {
	rep := h.Report(r.Context())
	code := http.StatusOK
	if rep.Status == StatusDown {
		code = http.StatusServiceUnavailable
	}
	body, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		text(w, http.StatusInternalServerError, "encode report: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}

func text(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, msg)
}

// oneLine redacts s and folds it onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(Redact(s)), " ")
}

// ErrNotLive is returned by Live when Options.Live did not answer in time.
var ErrNotLive = errors.New("liveness check did not answer in time")

// Live runs Options.Live within the probe timeout.
func (h *Handler) Live(ctx context.Context) error {
	if h.opts.Live == nil {
		return nil
	}
	o := h.live.do(ctx, h.budget(), func(context.Context) (struct{}, error) {
		return struct{}{}, h.opts.Live()
	})
	if o.timedOut {
		return ErrNotLive
	}
	return o.err
}

// Ready runs Options.Ready within the probe timeout; not answering in time is not ready.
func (h *Handler) Ready(ctx context.Context) (bool, string) {
	o := h.readiness(ctx)
	if o.err != nil {
		return false, Redact(o.err.Error())
	}
	return o.val.ok, Redact(o.val.reason)
}

func (h *Handler) readiness(ctx context.Context) outcome[readiness] {
	if h.opts.Ready == nil {
		return outcome[readiness]{val: readiness{ok: true}}
	}
	o := h.ready.do(ctx, h.budget(), func(context.Context) (readiness, error) {
		ok, reason := h.opts.Ready()
		return readiness{ok, reason}, nil
	})
	if o.timedOut {
		o.err = errors.New("readiness check did not answer in time")
	}
	return o
}
