package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost/plugins"
	"github.com/taskhost/taskhost/ratelimit"
)

// ID is the plugin's ID and config key, plugins.webhook.
const ID = "webhook"

// TaskType is the type of the tasks this plugin handles.
const TaskType = "webhook:deliver"

// DefaultTimeout bounds a delivery when plugins.webhook.timeout is not set.
const DefaultTimeout = 10 * time.Second

// maxRedirects is how many redirects a delivery follows.
const maxRedirects = 5

func init() { plugins.Register(&Webhook{}) }

var (
	_ plugins.Plugin       = (*Webhook)(nil)
	_ plugins.Provisioner  = (*Webhook)(nil)
	_ plugins.Validator    = (*Webhook)(nil)
	_ plugins.CleanerUpper = (*Webhook)(nil)
	_ plugins.Reloader     = (*Webhook)(nil)
)

// Config is plugins.webhook. See the package documentation.
type Config struct {
	Timeout       time.Duration `koanf:"timeout"`
	Rate          string        `koanf:"rate"`
	SigningSecret string        `koanf:"signing_secret"`
	AllowHosts    []string      `koanf:"allow_hosts"`
}

// String shows the config with the secret masked.
func (c Config) String() string {
	return fmt.Sprintf("{timeout:%s rate:%q signing_secret:%s allow_hosts:%q}",
		c.Timeout, c.Rate, mask(c.SigningSecret), c.AllowHosts)
}

// LogValue logs the config with the secret masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Duration("timeout", c.Timeout),
		slog.String("rate", c.Rate),
		slog.String("signing_secret", mask(c.SigningSecret)),
		slog.Any("allow_hosts", c.AllowHosts),
	)
}

func mask(s string) string {
	if s == "" {
		return `""`
	}
	return "***"
}

// Webhook is the webhook plugin. Its zero value is ready to be provisioned.
type Webhook struct {
	cur atomic.Pointer[settings] // what Provision built; Reload swaps it whole
	log *slog.Logger
	now func() time.Time
}

// settings are one generation of plugins.webhook, as a delivery uses them:
// it loads them once, so a reload meanwhile does not mix old and new.
type settings struct {
	cfg     Config // SigningSecret is moved to secret and cleared
	secret  []byte
	guard   *guard
	limiter *ratelimit.Limiter // nil: no rate
	client  *http.Client
}

// PluginInfo registers the plugin as "webhook".
func (*Webhook) PluginInfo() plugins.Info {
	return plugins.Info{ID: ID, New: func() plugins.Plugin { return &Webhook{} }}
}

// Provision decodes plugins.webhook, builds the HTTP client with its SSRF
// guard and the per-host limiter, and registers the webhook:deliver handler.
func (w *Webhook) Provision(ctx context.Context, h plugins.Host) error {
	w.log = h.Logger()
	if w.now == nil {
		w.now = time.Now
	}
	s, err := build(h, nil)
	if err != nil {
		return err
	}
	w.cur.Store(s)

	plugins.Handle(h, TaskType, w.deliver)
	// The host logs "plugin provisioned"; the settings are detail.
	w.log.Debug("webhook settings", s.logAttrs()...)
	return nil
}

// build decodes and checks plugins.webhook. It keeps prev's limiter when the
// rate is the same, and prev's client (and its pooled connections) when the
// timeout and allow_hosts are.
func build(h plugins.Host, prev *settings) (*settings, error) {
	cfg := Config{Timeout: DefaultTimeout}
	if err := h.DecodeConfig(&cfg); err != nil {
		return nil, err
	}
	s := &settings{cfg: cfg, secret: []byte(cfg.SigningSecret)}
	s.cfg.SigningSecret = ""

	g, err := parseAllowHosts(cfg.AllowHosts)
	if err != nil {
		return nil, &plugins.ConfigError{Key: "plugins." + ID + ".allow_hosts", Err: err}
	}
	switch {
	case cfg.Rate == "":
	case prev != nil && prev.cfg.Rate == cfg.Rate:
		s.limiter = prev.limiter
	default:
		// The same name as before: the counters carry on at the new rate.
		lim, err := h.Limiter("host", cfg.Rate)
		if errors.Is(err, plugins.ErrInvalidConfig) {
			return nil, &plugins.ConfigError{Key: "plugins." + ID + ".rate", Err: err}
		} else if err != nil {
			return nil, err
		}
		s.limiter = lim
	}
	if prev != nil && prev.cfg.Timeout == cfg.Timeout && slices.Equal(prev.cfg.AllowHosts, cfg.AllowHosts) {
		s.guard, s.client = prev.guard, prev.client
	} else {
		s.guard, s.client = g, newClient(g, cfg.Timeout)
	}
	return s, nil
}

func (s *settings) logAttrs() []any {
	return []any{"timeout", s.cfg.Timeout, "rate", s.cfg.Rate,
		"signing", len(s.secret) > 0, "allow_hosts", len(s.cfg.AllowHosts)}
}

// Validate checks the provisioned settings.
func (w *Webhook) Validate() error {
	return checkTimeout(w.cur.Load().cfg.Timeout)
}

func checkTimeout(d time.Duration) error {
	if d <= 0 {
		return &plugins.ConfigError{Key: "plugins." + ID + ".timeout", Err: fmt.Errorf("%s is not positive", d)}
	}
	return nil
}

// Reload applies a new plugins.webhook; every key can change at run time.
// The new section is checked in full first (as at start), then swapped in
// whole: a delivery under way finishes with the settings it started with,
// the next one uses the new. A changed rate keeps the per-host counters
// (the new rate applies in the current window). A changed timeout or
// allow_hosts builds a new HTTP client, so no connection pooled under the
// old allow_hosts is reused; the old client's idle connections are closed
// now, and once more when a request begun on it must have ended.
func (w *Webhook) Reload(_ context.Context, h plugins.Host) error {
	prev := w.cur.Load()
	s, err := build(h, prev)
	if err != nil {
		return err
	}
	if err := checkTimeout(s.cfg.Timeout); err != nil {
		return err
	}
	w.cur.Store(s)
	if s.client != prev.client {
		prev.client.CloseIdleConnections()
		time.AfterFunc(prev.cfg.Timeout+time.Second, prev.client.CloseIdleConnections)
	}
	w.log.Debug("webhook settings reloaded", s.logAttrs()...)
	return nil
}

// Cleanup closes the client's idle connections.
func (w *Webhook) Cleanup() error {
	if s := w.cur.Load(); s != nil {
		s.client.CloseIdleConnections()
	}
	return nil
}

func newClient(g *guard, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would dial for us, past the guard
		DialContext:           g.dialContext(timeout),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return errTooManyRedirects
			}
			return nil
		},
	}
}

var errTooManyRedirects = fmt.Errorf("stopped after %d redirects", maxRedirects)

// NewTask returns a webhook:deliver task for d.
func NewTask(d Delivery, opts ...asynq.Option) (*asynq.Task, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	return plugins.NewTask(TaskType, d, opts...)
}

// isPermanent reports whether a transport error will not go away by
// retrying: the SSRF guard refused the address, too many redirects, or the
// host name does not exist (NXDOMAIN; a temporary resolver failure is
// retried).
func isPermanent(err error) bool {
	var refused *RefusedError
	var dns *net.DNSError
	return errors.As(err, &refused) || errors.Is(err, errTooManyRedirects) ||
		(errors.As(err, &dns) && dns.IsNotFound && !dns.IsTemporary)
}
