package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
	cfg     Config // SigningSecret is moved to secret and cleared
	secret  []byte
	guard   *guard
	limiter *ratelimit.Limiter // nil: no rate
	client  *http.Client
	log     *slog.Logger
	now     func() time.Time
}

// PluginInfo registers the plugin as "webhook".
func (*Webhook) PluginInfo() plugins.Info {
	return plugins.Info{ID: ID, New: func() plugins.Plugin { return &Webhook{} }}
}

// Provision decodes plugins.webhook, builds the HTTP client with its SSRF
// guard and the per-host limiter, and registers the webhook:deliver handler.
func (w *Webhook) Provision(ctx context.Context, h plugins.Host) error {
	w.cfg = Config{Timeout: DefaultTimeout}
	if err := h.DecodeConfig(&w.cfg); err != nil {
		return err
	}
	w.secret = []byte(w.cfg.SigningSecret)
	w.cfg.SigningSecret = ""
	w.log = h.Logger()
	if w.now == nil {
		w.now = time.Now
	}

	g, err := parseAllowHosts(w.cfg.AllowHosts)
	if err != nil {
		return &plugins.ConfigError{Key: "plugins." + ID + ".allow_hosts", Err: err}
	}
	w.guard = g
	if w.cfg.Rate != "" {
		lim, err := h.Limiter("host", w.cfg.Rate)
		if errors.Is(err, plugins.ErrInvalidConfig) {
			return &plugins.ConfigError{Key: "plugins." + ID + ".rate", Err: err}
		} else if err != nil {
			return err
		}
		w.limiter = lim
	}
	w.client = w.newClient()

	plugins.Handle(h, TaskType, w.deliver)
	// The host logs "plugin provisioned"; the settings are detail.
	w.log.Debug("webhook settings", "timeout", w.cfg.Timeout, "rate", w.cfg.Rate,
		"signing", len(w.secret) > 0, "allow_hosts", len(w.cfg.AllowHosts))
	return nil
}

// Validate checks the provisioned settings.
func (w *Webhook) Validate() error {
	if w.cfg.Timeout <= 0 {
		return &plugins.ConfigError{Key: "plugins." + ID + ".timeout", Err: fmt.Errorf("%s is not positive", w.cfg.Timeout)}
	}
	return nil
}

// Cleanup closes the client's idle connections.
func (w *Webhook) Cleanup() error {
	if w.client != nil {
		w.client.CloseIdleConnections()
	}
	return nil
}

func (w *Webhook) newClient() *http.Client {
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would dial for us, past the guard
		DialContext:           w.guard.dialContext(w.cfg.Timeout),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   w.cfg.Timeout,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   w.cfg.Timeout,
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
