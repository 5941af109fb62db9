package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/net/http/httpguts"

	"github.com/taskhost/taskhost/plugins"
	"github.com/taskhost/taskhost/ratelimit"
)

// Delivery is the payload of a webhook:deliver task.
type Delivery struct {
	URL     string            `json:"url"`
	Method  string            `json:"method,omitempty"` // default POST
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
}

// Validate checks that URL is an absolute http or https URL with a host, that
// Method is empty or an HTTP token, and that the headers are well formed.
// plugins.Handle calls it, so a delivery that fails it is archived.
func (d *Delivery) Validate() error {
	if d.URL == "" {
		return errors.New("url is empty")
	}
	u, err := url.Parse(d.URL)
	if err != nil {
		return fmt.Errorf("url does not parse: %w", stripURL(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url scheme %q is not http or https", u.Scheme)
	}
	if u.Hostname() == "" {
		return errors.New("url has no host")
	}
	if err := checkHost(u.Hostname()); err != nil {
		return err
	}
	if d.Method != "" && !isToken(d.Method) {
		return fmt.Errorf("method %q is not an HTTP method", d.Method)
	}
	for k, v := range d.Headers {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("header name %q is not valid", k)
		}
		// net/http refuses these when it sends the request; caught here,
		// the delivery is archived as malformed instead of retried.
		if !httpguts.ValidHeaderFieldValue(v) {
			return fmt.Errorf("header %s has a control character (a line break, NUL or other byte below 0x20 but tab, or DEL) in its value", k)
		}
	}
	return nil
}

// checkHost refuses a URL host that is neither an IP address written as
// such nor a DNS name: the numeric forms that C resolvers read as IPv4
// (127.1, 0x7f000001, 2130706433, 0177.0.0.1) are names to Go's resolver,
// so they would fail as "no such host" on every retry, or resolve
// somewhere unexpected through a search domain.
func checkHost(host string) error {
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if !validHostname(name) {
		return fmt.Errorf("url host %q is neither an IP address nor a DNS name", host)
	}
	last := name[strings.LastIndexByte(name, '.')+1:]
	if numericLabel(last) {
		return fmt.Errorf("url host %q is a numeric form, not a dotted-quad IPv4 address or a DNS name "+
			"(write an IPv4 address as four decimal numbers, e.g. 127.0.0.1)", host)
	}
	return nil
}

// numericLabel reports whether a label is all decimal digits or a 0x hex
// number: a DNS name's last label never is.
func numericLabel(l string) bool {
	if h, ok := strings.CutPrefix(l, "0x"); ok && h != "" {
		l = h
		for _, c := range l {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
		return true
	}
	for _, c := range l {
		if c < '0' || c > '9' {
			return false
		}
	}
	return l != ""
}

// StatusError is the error of a delivery answered with a status that is not
// 2xx. It wraps asynq.SkipRetry when the status is not worth retrying.
type StatusError struct {
	Code   int
	Status string // e.g. "404 Not Found"
}

func (e *StatusError) Error() string { return "status " + e.Status }

// deliver sends one delivery; see the package documentation for what each
// outcome returns.
func (w *Webhook) deliver(ctx context.Context, d Delivery) (err error) {
	var code int               // the response's status, for the span
	u, err := url.Parse(d.URL) // Validate parsed it already
	if err != nil {
		return fmt.Errorf("webhook: %w: %w", stripURL(err), asynq.SkipRetry)
	}
	method := d.Method
	if method == "" {
		method = http.MethodPost
	}
	where := method + " " + redact(u)
	// The worker's "task done" or "task failed" line names the destination
	// and, below, the status.
	plugins.AnnotateTask(ctx, "host", u.Host)
	s := w.cur.Load() // one generation of the settings for the whole delivery

	if s.limiter != nil {
		host := strings.ToLower(u.Hostname())
		res, err := s.limiter.Allow(ctx, host)
		if err != nil {
			return fmt.Errorf("webhook: %s: rate limiter: %w", where, err)
		}
		if res.Reached {
			return &ratelimit.LimitedError{RetryIn: max(res.Reset.Sub(w.now()), 10*time.Millisecond)}
		}
	}

	var body io.Reader = http.NoBody
	if d.Body != "" {
		body = strings.NewReader(d.Body)
	}
	ctx, span := startSpan(ctx, method, u)
	defer func() { endSpan(span, code, err) }()
	req, err := http.NewRequestWithContext(ctx, method, d.URL, body)
	if err != nil {
		return fmt.Errorf("webhook: %s: %w: %w", where, stripURL(err), asynq.SkipRetry)
	}
	for k, v := range d.Headers {
		req.Header.Set(k, v)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "taskhost-webhook/1")
	}
	if len(s.secret) > 0 {
		ts := strconv.FormatInt(w.now().Unix(), 10)
		req.Header.Set(HeaderTimestamp, ts)
		req.Header.Set(HeaderSignature, Sign(s.secret, ts, []byte(d.Body)))
	}

	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		err = stripURL(err)
		if isPermanent(err) {
			return fmt.Errorf("webhook: %s: %w: %w", where, err, asynq.SkipRetry)
		}
		return fmt.Errorf("webhook: %s: %w", where, err) // timeout, refused, reset: retried
	}
	// Read a little of the body so the connection can be reused.
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	_ = resp.Body.Close()
	plugins.AnnotateTask(ctx, "status", resp.StatusCode, "http_duration", time.Since(start))

	code = resp.StatusCode
	serr := &StatusError{Code: code, Status: resp.Status}
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusTooManyRequests:
		return &ratelimit.LimitedError{RetryIn: retryAfter(resp.Header.Get("Retry-After"), w.now()), Strict: true}
	case code == http.StatusRequestTimeout, code >= 500:
		return fmt.Errorf("webhook: %s: %w", where, serr)
	default: // other 4xx; 1xx and 3xx that were not followed
		return fmt.Errorf("webhook: %s: %w: %w", where, serr, asynq.SkipRetry)
	}
}

// Bounds of the delay taken from a 429's Retry-After.
const (
	DefaultRetryAfter = 30 * time.Second
	minRetryAfter     = time.Second
	maxRetryAfter     = 24 * time.Hour
)

// retryAfter reads a Retry-After value, in seconds or as an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return DefaultRetryAfter
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return DefaultRetryAfter
		}
		d = time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return DefaultRetryAfter
	}
	return min(max(d, minRetryAfter), maxRetryAfter)
}

// redact shows a URL without credentials, query or fragment, which may hold
// tokens.
func redact(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return r.String()
}

// stripURL unwraps a *url.Error, whose message holds the whole URL.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// isToken reports whether s is an RFC 9110 token, as methods and header
// names are.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
