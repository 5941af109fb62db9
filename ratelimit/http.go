package ratelimit

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/middleware/stdlib"
)

// HTTPOptions tune HTTPMiddleware. The zero value limits by client IP.
type HTTPOptions struct {
	// Key returns the key to count a request under; by default the client
	// IP, as ulule's stdlib middleware takes it.
	Key func(*http.Request) string
	// TrustForwardHeader makes the default Key read X-Forwarded-For and
	// X-Real-IP. Only set it behind a proxy that sets them.
	TrustForwardHeader bool
}

// HTTPMiddleware limits requests to rate per key, for apps that share
// taskhost's Redis, with ulule's stdlib middleware on the Registry's fallback
// store. Every answer carries X-RateLimit-Limit, X-RateLimit-Remaining and
// X-RateLimit-Reset (Unix seconds); over the limit it answers 429 with
// Retry-After in whole seconds, rounded up. Counts live under name, as for
// Limiter. A check that fails for a reason other than Redis being unreachable
// (which is answered from memory) gets a 500.
func (r *Registry) HTTPMiddleware(name, rate string, o HTTPOptions) (func(http.Handler) http.Handler, error) {
	l, err := r.Limiter(name, rate)
	if err != nil {
		return nil, err
	}
	ul := limiter.New(r.store, l.Rate(), limiter.WithTrustForwardHeader(o.TrustForwardHeader))
	keyOf := o.Key
	if keyOf == nil {
		keyOf = func(req *http.Request) string { return ul.GetIPKey(req) }
	}
	mw := stdlib.NewMiddleware(ul,
		stdlib.WithKeyGetter(func(req *http.Request) string { return l.key(keyOf(req)) }),
		stdlib.WithLimitReachedHandler(limitReached),
		stdlib.WithErrorHandler(func(w http.ResponseWriter, req *http.Request, err error) {
			r.log.Debug("rate limit check failed", "limiter", name, "error", err)
			http.Error(w, "rate limit check failed", http.StatusInternalServerError)
		}),
	)
	return func(next http.Handler) http.Handler {
		h := mw.Handler(next)
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			var n resetNote
			h.ServeHTTP(w, req.WithContext(withNote(req.Context(), &n)))
		})
	}, nil
}

// limitReached answers 429 with Retry-After, from the exact window end when
// known and from X-RateLimit-Reset otherwise.
func limitReached(w http.ResponseWriter, req *http.Request) {
	wait := time.Second
	if n, ok := req.Context().Value(noteKey{}).(*resetNote); ok && !n.at.IsZero() {
		wait = time.Until(n.at)
	} else if s, err := strconv.ParseInt(w.Header().Get("X-RateLimit-Reset"), 10, 64); err == nil {
		wait = time.Until(time.Unix(s+1, 0))
	}
	secs := max(int64(math.Ceil(wait.Seconds())), 1)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	http.Error(w, "rate limit exceeded", http.StatusTooManyRequests)
}
