package ratelimit_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/ratelimit"
)

func TestHTTPMiddleware(t *testing.T) {
	t.Parallel()
	e := setup(t)
	mw, err := e.reg.HTTPMiddleware("api", "3-M", ratelimit.HTTPOptions{})
	require.NoError(t, err)
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))

	call := func(ip string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = ip + ":5555"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	start := time.Now()
	for i := 1; i <= 3; i++ {
		rec := call("192.0.2.10")
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, "3", rec.Header().Get("X-RateLimit-Limit"))
		require.Equal(t, strconv.Itoa(3-i), rec.Header().Get("X-RateLimit-Remaining"))
		reset, err := strconv.ParseInt(rec.Header().Get("X-RateLimit-Reset"), 10, 64)
		require.NoError(t, err)
		require.InDelta(t, start.Add(time.Minute).Unix(), reset, 2)
		require.Empty(t, rec.Header().Get("Retry-After"))
	}
	rec := call("192.0.2.10")
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	require.Equal(t, "3", rec.Header().Get("X-RateLimit-Limit"))
	require.Equal(t, "0", rec.Header().Get("X-RateLimit-Remaining"))
	require.NotEmpty(t, rec.Header().Get("X-RateLimit-Reset"))
	ra, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, ra, 58)
	require.LessOrEqual(t, ra, 60)

	require.Equal(t, http.StatusOK, call("192.0.2.11").Code, "another client has its own count")
	require.Equal(t, int64(4), e.redisCount(t, "api:192.0.2.10"), "counted on the shared Redis")
	require.Equal(t, uint64(1), e.reg.Stats().Rejections)

	// A custom key, here an API token header, on the memory backend.
	e.sw.Set(false)
	byToken, err := e.reg.HTTPMiddleware("token", "1-S", ratelimit.HTTPOptions{
		Key: func(r *http.Request) string { return r.Header.Get("X-Token") },
	})
	require.NoError(t, err)
	ht := byToken(http.NotFoundHandler())
	send := func(tok string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("X-Token", tok)
		rec := httptest.NewRecorder()
		ht.ServeHTTP(rec, req)
		return rec
	}
	require.Equal(t, http.StatusNotFound, send("a").Code)
	over := send("a")
	require.Equal(t, http.StatusTooManyRequests, over.Code)
	require.Equal(t, "1", over.Header().Get("Retry-After"))
	require.Equal(t, http.StatusNotFound, send("b").Code)

	_, err = e.reg.HTTPMiddleware("x", "lots", ratelimit.HTTPOptions{})
	require.ErrorIs(t, err, ratelimit.ErrBadRate)
}
