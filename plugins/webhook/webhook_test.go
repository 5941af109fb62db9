package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskhost/taskhost/plugins"
	"github.com/taskhost/taskhost/plugins/pluginstest"
	"github.com/taskhost/taskhost/ratelimit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// loopback admits the httptest servers, which listen on 127.0.0.1.
var loopback = []any{"127.0.0.0/8"}

// setup provisions a webhook plugin with config on a test host.
func setup(t *testing.T, config map[string]any) (*Webhook, *pluginstest.Host) {
	t.Helper()
	h := pluginstest.NewHost(t, pluginstest.Options{ID: ID, Config: config})
	w := &Webhook{}
	require.NoError(t, h.Provision(t.Context(), w))
	return w, h
}

// deliver runs one webhook:deliver task for d.
func deliver(t *testing.T, h *pluginstest.Host, d Delivery) error {
	t.Helper()
	payload, err := json.Marshal(d)
	require.NoError(t, err)
	return h.Run(t.Context(), TaskType, payload)
}

type received struct {
	Method string
	Path   string
	Header http.Header
	Body   string
}

// server is an httptest server that answers with handle and records each
// request.
type server struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []received
}

func newServer(t *testing.T, handle http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, received{r.Method, r.URL.Path, r.Header.Clone(), string(body)})
		s.mu.Unlock()
		handle(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) requests() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.reqs...)
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }
}

func TestDeliver2xx(t *testing.T) {
	t.Parallel()
	for _, code := range []int{200, 201, 204} {
		srv := newServer(t, status(code))
		_, h := setup(t, map[string]any{"allow_hosts": loopback})
		err := deliver(t, h, Delivery{
			URL:     srv.URL + "/hook?token=abc",
			Headers: map[string]string{"Content-Type": "application/json", "X-Custom": "1"},
			Body:    `{"id":1}`,
		})
		require.NoError(t, err, "status %d", code)
		reqs := srv.requests()
		require.Len(t, reqs, 1)
		require.Equal(t, "POST", reqs[0].Method, "POST is the default")
		require.Equal(t, "/hook", reqs[0].Path)
		require.Equal(t, `{"id":1}`, reqs[0].Body)
		require.Equal(t, "application/json", reqs[0].Header.Get("Content-Type"))
		require.Equal(t, "1", reqs[0].Header.Get("X-Custom"))
		require.Equal(t, "taskhost-webhook/1", reqs[0].Header.Get("User-Agent"))
		require.Empty(t, reqs[0].Header.Get(HeaderSignature), "no secret, no signature")
	}
}

func TestDeliverMethod(t *testing.T) {
	t.Parallel()
	srv := newServer(t, status(200))
	_, h := setup(t, map[string]any{"allow_hosts": loopback})
	require.NoError(t, deliver(t, h, Delivery{URL: srv.URL, Method: "PUT", Body: "x"}))
	require.NoError(t, deliver(t, h, Delivery{URL: srv.URL, Method: "GET"}))
	reqs := srv.requests()
	require.Equal(t, "PUT", reqs[0].Method)
	require.Equal(t, "GET", reqs[1].Method)
	require.Empty(t, reqs[1].Body)
}

func TestDeliverRetryableOutcomes(t *testing.T) {
	t.Parallel()
	for _, code := range []int{500, 502, 503, 408} {
		srv := newServer(t, status(code))
		_, h := setup(t, map[string]any{"allow_hosts": loopback})
		err := deliver(t, h, Delivery{URL: srv.URL + "/x?secret=q"})
		require.Error(t, err, "status %d", code)
		require.NotErrorIs(t, err, asynq.SkipRetry, "status %d must be retried", code)
		var se *StatusError
		require.ErrorAs(t, err, &se)
		require.Equal(t, code, se.Code)
		require.Contains(t, err.Error(), strconv.Itoa(code))
		require.NotContains(t, err.Error(), "secret=q", "the query may hold tokens")
		var le *ratelimit.LimitedError
		require.NotErrorAs(t, err, &le)
	}
}

func TestDeliverArchives4xx(t *testing.T) {
	t.Parallel()
	for _, code := range []int{400, 401, 403, 404, 410, 422} {
		srv := newServer(t, status(code))
		_, h := setup(t, map[string]any{"allow_hosts": loopback})
		err := deliver(t, h, Delivery{URL: srv.URL + "/gone"})
		require.ErrorIs(t, err, asynq.SkipRetry, "status %d", code)
		require.ErrorContains(t, err, "status "+strconv.Itoa(code)+" "+http.StatusText(code))
		require.ErrorContains(t, err, "POST "+srv.URL+"/gone")
	}
}

func TestDeliver429HonoursRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value func() string
		want  time.Duration
		delta time.Duration
	}{
		{"seconds", func() string { return "7" }, 7 * time.Second, 0},
		{"absent", func() string { return "" }, DefaultRetryAfter, 0},
		{"HTTP date", func() string { return time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat) }, 2 * time.Minute, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if v := tt.value(); v != "" {
					w.Header().Set("Retry-After", v)
				}
				w.WriteHeader(http.StatusTooManyRequests)
			})
			_, h := setup(t, map[string]any{"allow_hosts": loopback})
			err := deliver(t, h, Delivery{URL: srv.URL})
			var le *ratelimit.LimitedError
			require.ErrorAs(t, err, &le)
			require.InDelta(t, tt.want, le.RetryIn, float64(tt.delta))
			require.NotErrorIs(t, err, asynq.SkipRetry)
			require.False(t, ratelimit.IsFailure(err), "a 429 is not a failure")
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              DefaultRetryAfter,
		"0":                             time.Second,
		"120":                           2 * time.Minute,
		"-5":                            DefaultRetryAfter,
		"soon":                          DefaultRetryAfter,
		"999999999999":                  24 * time.Hour,
		"Fri, 02 Jan 2026 03:05:05 GMT": time.Minute,
		"Fri, 02 Jan 2026 03:00:00 GMT": time.Second, // in the past
	} {
		require.Equal(t, want, retryAfter(in, now), "Retry-After %q", in)
	}
}

func TestDeliverSignature(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-value"
	srv := newServer(t, status(204))
	w, h := setup(t, map[string]any{"allow_hosts": loopback, "signing_secret": secret})
	fixed := time.Unix(1_700_000_000, 0)
	w.now = func() time.Time { return fixed }

	body := `{"event":"paid"}`
	require.NoError(t, deliver(t, h, Delivery{URL: srv.URL, Body: body}))
	req := srv.requests()[0]
	ts := req.Header.Get(HeaderTimestamp)
	sig := req.Header.Get(HeaderSignature)
	require.Equal(t, "1700000000", ts)

	// Recompute it independently of Sign.
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "." + body))
	require.Equal(t, "sha256="+hex.EncodeToString(m.Sum(nil)), sig)

	require.NoError(t, Verify([]byte(secret), ts, sig, []byte(req.Body), 5*time.Minute, fixed.Add(time.Minute)))
	require.ErrorIs(t, Verify([]byte("wrong"), ts, sig, []byte(req.Body), 0, fixed), ErrBadSignature)
	require.ErrorIs(t, Verify([]byte(secret), ts, sig, []byte(req.Body+" "), 0, fixed), ErrBadSignature)
	require.ErrorIs(t, Verify([]byte(secret), ts, sig, []byte(req.Body), 5*time.Minute, fixed.Add(6*time.Minute)), ErrStaleTimestamp)
	require.ErrorIs(t, Verify([]byte(secret), ts, strings.ToUpper(sig), []byte(req.Body), 0, fixed), ErrBadSignature, "prefix is case-sensitive")
	require.NoError(t, Verify([]byte(secret), ts, "sha256="+strings.ToUpper(sig[7:]), []byte(req.Body), 0, fixed), "hex is not")
}

func TestSecretNeverShown(t *testing.T) {
	t.Parallel()
	const secret = "do-not-print-me"
	srv := newServer(t, status(500))
	w, h := setup(t, map[string]any{"allow_hosts": loopback, "signing_secret": secret})
	err := deliver(t, h, Delivery{URL: srv.URL, Body: "b"})
	require.Error(t, err)
	require.NotContains(t, err.Error(), secret)
	require.NotContains(t, h.Logs(), secret)
	require.NotEmpty(t, h.Logs())

	cfg := Config{SigningSecret: secret, Timeout: time.Second}
	require.NotContains(t, cfg.String(), secret)
	require.Contains(t, cfg.String(), "signing_secret:***")
	h.Logger().Info("config", "cfg", cfg)
	require.NotContains(t, h.Logs(), secret)
	require.NotContains(t, w.cur.Load().cfg.String(), secret)

	// A config error does not show the value either.
	h2 := pluginstest.NewHost(t, pluginstest.Options{ID: ID, Config: map[string]any{"signing_secret": []any{secret}}})
	err = h2.Provision(t.Context(), &Webhook{})
	require.ErrorContains(t, err, "plugins.webhook.signing_secret")
	require.NotContains(t, err.Error(), secret)
}

func TestDeliverTimeoutIsRetried(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	_, h := setup(t, map[string]any{"allow_hosts": loopback, "timeout": "150ms"})
	start := time.Now()
	err := deliver(t, h, Delivery{URL: srv.URL})
	elapsed := time.Since(start)
	require.Error(t, err)
	require.NotErrorIs(t, err, asynq.SkipRetry)
	require.ErrorContains(t, err, "Client.Timeout exceeded")
	require.GreaterOrEqual(t, elapsed, 150*time.Millisecond)
	require.Less(t, elapsed, 2*time.Second, "the timeout bounds the delivery")
}

func TestDeliverConnectionErrorIsRetried(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now
	_, h := setup(t, map[string]any{"allow_hosts": loopback})
	err = deliver(t, h, Delivery{URL: "http://" + addr})
	require.ErrorContains(t, err, "connection refused")
	require.NotErrorIs(t, err, asynq.SkipRetry)
}

func TestSSRFRefusedByDefault(t *testing.T) {
	t.Parallel()
	srv := newServer(t, status(200))
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	tests := []struct{ url, reason string }{
		{srv.URL, "destination 127.0.0.1 refused: loopback"},
		{"http://localhost:" + port, "refused: loopback"}, // a name that resolves to loopback
		{"http://10.1.2.3/", "destination 10.1.2.3 refused: private"},
		{"http://192.168.0.1:8080/", "refused: private"},
		{"http://169.254.169.254/latest/meta-data", "destination 169.254.169.254 refused: link-local"},
		{"http://[::1]:" + port, "refused: loopback"},
		{"http://[::ffff:127.0.0.1]:" + port, "destination 127.0.0.1 refused: loopback"},
		{"http://0.0.0.0:" + port, "refused: unspecified"},
	}
	_, h := setup(t, nil)
	for _, tt := range tests {
		err := deliver(t, h, Delivery{URL: tt.url})
		require.ErrorIs(t, err, asynq.SkipRetry, tt.url)
		var re *RefusedError
		require.ErrorAs(t, err, &re, tt.url)
		require.ErrorContains(t, err, tt.reason, tt.url)
	}
	require.Empty(t, srv.requests(), "nothing reached the server")
}

func TestSSRFRedirectIntoRefusedAddress(t *testing.T) {
	t.Parallel()
	inner := newServer(t, status(200))
	outer := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, inner.URL+"/internal", http.StatusFound)
	})
	// Only the outer server's port is allowed... by listing the host name,
	// which the redirect target does not use.
	_, h := setup(t, map[string]any{"allow_hosts": []any{"localhost"}})
	outerURL := strings.Replace(outer.URL, "127.0.0.1", "localhost", 1)
	err := deliver(t, h, Delivery{URL: outerURL})
	require.ErrorIs(t, err, asynq.SkipRetry)
	require.ErrorContains(t, err, "destination 127.0.0.1 refused: not in plugins.webhook.allow_hosts")
	require.Len(t, outer.requests(), 1)
	require.Empty(t, inner.requests(), "the redirect must not reach the refused address")
}

func TestSSRFRedirectIntoLoopbackByDefault(t *testing.T) {
	t.Parallel()
	// The first hop is admitted by name (as a public host would be), the
	// redirect points at a loopback IP, which the default policy refuses.
	inner := newServer(t, status(200))
	outer := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, inner.URL, http.StatusTemporaryRedirect)
	})
	w, h := setup(t, nil)
	w.cur.Load().guard.hosts["localhost"] = true // stands in for a public name
	require.True(t, w.cur.Load().guard.prefixes == nil)
	err := deliver(t, h, Delivery{URL: strings.Replace(outer.URL, "127.0.0.1", "localhost", 1)})
	require.ErrorIs(t, err, asynq.SkipRetry)
	require.ErrorContains(t, err, "destination 127.0.0.1 refused")
	require.Empty(t, inner.requests())
}

func TestAllowHosts(t *testing.T) {
	t.Parallel()
	srv := newServer(t, status(200))
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]

	// A CIDR admits a name that resolves into it.
	_, h := setup(t, map[string]any{"allow_hosts": loopback})
	require.NoError(t, deliver(t, h, Delivery{URL: "http://localhost:" + port}))

	// A single IP.
	_, h = setup(t, map[string]any{"allow_hosts": []any{"127.0.0.1"}})
	require.NoError(t, deliver(t, h, Delivery{URL: srv.URL}))

	// A listed name, whatever it resolves to.
	_, h = setup(t, map[string]any{"allow_hosts": []any{"LocalHost."}})
	require.NoError(t, deliver(t, h, Delivery{URL: "http://localhost:" + port}))

	// With a list, what is not listed is refused, public or not.
	_, h = setup(t, map[string]any{"allow_hosts": []any{"10.0.0.0/8"}})
	err := deliver(t, h, Delivery{URL: srv.URL})
	require.ErrorIs(t, err, asynq.SkipRetry)
	require.ErrorContains(t, err, "not in plugins.webhook.allow_hosts")
	err = deliver(t, h, Delivery{URL: "http://93.184.215.14/"}) // a public address
	require.ErrorContains(t, err, "destination 93.184.215.14 refused: not in plugins.webhook.allow_hosts")

	require.Len(t, srv.requests(), 3)
}

func TestRedirectFollowedWhenAllowed(t *testing.T) {
	t.Parallel()
	inner := newServer(t, status(200))
	outer := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, inner.URL+"/final", http.StatusTemporaryRedirect)
	})
	_, h := setup(t, map[string]any{"allow_hosts": loopback})
	require.NoError(t, deliver(t, h, Delivery{URL: outer.URL, Body: "b"}))
	require.Equal(t, "/final", inner.requests()[0].Path)
	require.Equal(t, "b", inner.requests()[0].Body, "307 keeps the body")
}

func TestTooManyRedirectsArchived(t *testing.T) {
	t.Parallel()
	var srv *server
	srv = newServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+"/again", http.StatusFound)
	})
	_, h := setup(t, map[string]any{"allow_hosts": loopback})
	err := deliver(t, h, Delivery{URL: srv.URL})
	require.ErrorIs(t, err, asynq.SkipRetry)
	require.ErrorContains(t, err, "stopped after 5 redirects")
}

func TestNonPublic(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"127.0.0.1":        "loopback",
		"127.8.9.10":       "loopback",
		"::1":              "loopback",
		"10.0.0.1":         "private",
		"172.16.5.4":       "private",
		"192.168.1.1":      "private",
		"fd00::1":          "private",
		"169.254.169.254":  "link-local",
		"fe80::1":          "link-local",
		"0.0.0.0":          "unspecified",
		"0.1.2.3":          "unspecified",
		"::":               "unspecified",
		"224.0.0.1":        "multicast",
		"239.1.1.1":        "multicast",
		"ff02::1":          "multicast",
		"100.64.0.1":       "shared (CGNAT)",
		"255.255.255.255":  "reserved",
		"64:ff9b::a00:1":   "private", // NAT64 of 10.0.0.1
		"8.8.8.8":          "",
		"93.184.215.14":    "",
		"2606:4700::1111":  "",
		"64:ff9b::808:808": "",
	} {
		a := netipMust(t, addr)
		require.Equal(t, want, nonPublic(a), addr)
	}
}

func TestMalformedPayloadArchived(t *testing.T) {
	t.Parallel()
	_, h := setup(t, map[string]any{"allow_hosts": loopback})
	for payload, reason := range map[string]string{
		`{"url":"http://127.0.0.1/","x":1}`:                       `json: unknown field "x"`,
		`{"url":"ftp://127.0.0.1/"}`:                              `invalid: url scheme "ftp" is not http or https`,
		`{"url":"http:///nohost"}`:                                "invalid: url has no host",
		`{"url":""}`:                                              "invalid: url is empty",
		`{"url":"http://127.0.0.1/","method":"PO ST"}`:            `invalid: method "PO ST" is not an HTTP method`,
		`{"url":"http://127.0.0.1/","headers":{"A B":"x"}}`:       `invalid: header name "A B" is not valid`,
		`{"url":"http://127.0.0.1/","headers":{"A":"x\r\nB: y"}}`: "invalid: header A has a control character",
		`{"url":"http://127.0.0.1/","body":{}}`:                   "json: cannot unmarshal object",
		`not json`:                                                "invalid character",
	} {
		err := h.Run(t.Context(), TaskType, []byte(payload))
		require.ErrorIs(t, err, asynq.SkipRetry, payload)
		require.ErrorIs(t, err, plugins.ErrMalformedPayload, payload)
		require.ErrorContains(t, err, "malformed payload for webhook:deliver: "+reason, payload)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		config map[string]any
		want   string
	}{
		{"unknown key", map[string]any{"timout": "1s"}, "plugins.webhook.timout: unknown key"},
		{"bad duration", map[string]any{"timeout": "ten"}, `plugins.webhook.timeout: "ten" is not a duration`},
		{"zero timeout", map[string]any{"timeout": "0s"}, "plugins.webhook.timeout: 0s is not positive"},
		{"bad rate", map[string]any{"rate": "fast"}, `plugins.webhook.rate: limiter "host": "fast" is not a rate`},
		{"bad allow_hosts", map[string]any{"allow_hosts": []any{"10.0.0.0/8", "http://x"}}, `plugins.webhook.allow_hosts: allow_hosts[1]: "http://x" is not a host name, an IP address or a CIDR`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := pluginstest.NewHost(t, pluginstest.Options{ID: ID, Config: tt.config})
			err := h.Provision(t.Context(), &Webhook{})
			require.ErrorContains(t, err, tt.want)
			require.ErrorIs(t, err, plugins.ErrInvalidConfig, "the worker exits 2")
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	w, h := setup(t, nil)
	require.Equal(t, DefaultTimeout, w.cur.Load().cfg.Timeout)
	require.Equal(t, DefaultTimeout, w.cur.Load().client.Timeout)
	require.Nil(t, w.cur.Load().limiter)
	require.True(t, w.cur.Load().guard.open())
	require.Equal(t, []string{TaskType}, h.TaskTypes())
}

func TestRatePerHost(t *testing.T) {
	t.Parallel()
	srv := newServer(t, status(200))
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	_, h := setup(t, map[string]any{"allow_hosts": loopback, "rate": "2-M"})
	for range 2 {
		require.NoError(t, deliver(t, h, Delivery{URL: srv.URL}))
	}
	err := deliver(t, h, Delivery{URL: srv.URL + "/other-path"})
	var le *ratelimit.LimitedError
	require.ErrorAs(t, err, &le)
	require.Greater(t, le.RetryIn, 50*time.Second)
	require.LessOrEqual(t, le.RetryIn, time.Minute)
	require.False(t, ratelimit.IsFailure(err))
	require.Len(t, srv.requests(), 2, "a limited delivery sends nothing")

	// Another host name has its own count.
	require.NoError(t, deliver(t, h, Delivery{URL: "http://localhost:" + port}))
	require.Len(t, srv.requests(), 3)
}

func TestNewTask(t *testing.T) {
	t.Parallel()
	task, err := NewTask(Delivery{URL: "https://example.com/h", Body: "b"}, asynq.MaxRetry(3))
	require.NoError(t, err)
	require.Equal(t, TaskType, task.Type())
	require.JSONEq(t, `{"url":"https://example.com/h","body":"b"}`, string(task.Payload()))
	_, err = NewTask(Delivery{URL: "file:///etc/passwd"})
	require.ErrorContains(t, err, `webhook: url scheme "file" is not http or https`)
}

func TestRegistered(t *testing.T) {
	t.Parallel()
	info, ok := plugins.Lookup(ID)
	require.True(t, ok)
	_, isWebhook := info.New().(*Webhook)
	require.True(t, isWebhook)
}

// TestTaskLineShowsHostAndStatus: the worker's line for the task names the
// destination's host and the HTTP status, not the URL's path or query.
func TestTaskLineShowsHostAndStatus(t *testing.T) {
	t.Parallel()
	srv := newServer(t, status(503))
	_, h := setup(t, map[string]any{"allow_hosts": loopback})
	host := strings.TrimPrefix(srv.URL, "http://")
	require.Error(t, deliver(t, h, Delivery{URL: srv.URL + "/hook?token=abc"}))
	require.Contains(t, h.Logs(), `msg="task failed" component=task`)
	require.Contains(t, h.Logs(), "host="+host+" status=503 http_duration=")
	require.NotContains(t, h.Logs(), "token=abc")
	require.Equal(t, 1, strings.Count(h.Logs(), "provisioned"), "provisioning is logged once, by the host")
	require.Contains(t, h.Logs(), `msg="plugin provisioned" component=plugin plugin=webhook task_types=[webhook:deliver]`)
}
