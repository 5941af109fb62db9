package taskhost

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"
	"github.com/taskhost/taskhost/internal/config"
	"github.com/taskhost/taskhost/plugins"
	"github.com/ulule/limiter/v3"
)

// The expected forms that messages name, shared by decoding and validation.
const (
	formMode          = "a Redis mode (standalone, sentinel, cluster or embedded)"
	formPort          = "a port number (1-65535)"
	formDB            = "a database number (integer >= 0)"
	formURL           = "redis://[user:password@]host:port[/db] or rediss://..."
	formDialAddr      = "a host:port address"
	formAddrList      = "a list of host:port addresses (comma-separated in the environment)"
	formListen        = "a listen address (host:port, e.g. 127.0.0.1:8080 or :8080)"
	formPosDuration   = "a positive duration, such as 500ms, 2s or 1m"
	formDuration      = "a duration with a unit, such as 500ms, 2s or 1m"
	formPoolSize      = "a pool size (integer >= 1)"
	formCount         = "a count (integer >= 0)"
	formMaxRetries    = "a retry count (-1 disables retries, 0 means go-redis' default of 3)"
	formDialerRetries = "a retry count (integer >= 0; 0 means go-redis' default of 5)"
	formConcurrency   = "a concurrency (integer >= 1)"
	formQueues        = "a map of queue name to weight (name=weight,name=weight in the environment)"
	formWeight        = "a queue weight (integer >= 1; asynq v0.26.0 silently ignores a queue whose weight is <= 0)"
	formMaxRetry      = "a retry count (integer >= 0)"
	formFetchers      = "a fetcher count (integer >= 1)"
	formWakeup        = "a wake-up source (auto, notify, poll or off)"
	formLevel         = "a log level (debug, info, warn or error)"
	formFormat        = "a log format (text or json)"
	formDetail        = "a detail level (full or minimal)"
	formBytes         = "a size in bytes (integer >= 1)"
	formEntries       = "an entry count (integer >= 1)"
	formRates         = "a map of name to rate (name=rate,name=rate in the environment)"
	formRate          = `a rate in ulule's format, <limit>-<period> with limit >= 1 and period S, M, H or D (e.g. "10-S" or "1000-H")`
	formTasks         = "a task count (integer >= 1)"
	formDrainRate     = "a rate in tasks per second (number > 0)"
	formPlugin        = "a plugin section (a map of keys, or empty to run the plugin with its defaults)"
)

// keyForms names the form of the keys whose form is narrower than their type.
var keyForms = map[string]string{
	"redis.mode":               formMode,
	"redis.port":               formPort,
	"redis.db":                 formDB,
	"redis.sentinel_addrs":     formAddrList,
	"redis.addrs":              formAddrList,
	"redis.pool_size":          formPoolSize,
	"redis.min_idle_conns":     formCount,
	"redis.max_retries":        formMaxRetries,
	"redis.dialer_retries":     formDialerRetries,
	"redis.embedded.addr":      formDialAddr,
	"worker.concurrency":       formConcurrency,
	"worker.queues":            formQueues,
	"worker.max_retry":         formMaxRetry,
	"worker.fetchers":          formFetchers,
	"worker.wakeup":            formWakeup,
	"log.level":                formLevel,
	"log.format":               formFormat,
	"health.addr":              formListen,
	"health.detail":            formDetail,
	"cache.max_value_bytes":    formBytes,
	"cache.memory.max_entries": formEntries,
	"ratelimit.limits":         formRates,
	"ratelimit.tasks":          formRates,
	"outbox.max_tasks":         formTasks,
	"outbox.max_bytes":         formBytes,
	"outbox.drain_rate":        formDrainRate,
	"ui.addr":                  formListen,
}

// positiveDurations are the keys that must be > 0.
var positiveDurations = []string{
	"redis.dial_timeout", "redis.read_timeout", "redis.write_timeout", "redis.pool_timeout",
	"redis.ping_interval", "redis.backoff_min", "redis.backoff_max",
	"worker.shutdown_timeout", "worker.task_timeout", "worker.retry_base_delay", "worker.retry_max_delay",
	"health.timeout",
}

// Validate checks c against every rule and reports every problem at once, as
// an error that matches ErrInvalidConfig, including plugin IDs that are not
// compiled in. Each plugin checks its own section when it is provisioned
// (CheckConfig runs that too). LoadConfig does not check plugin IDs, so that
// a command that only enqueues can load a worker's config.
func (c Config) Validate() error {
	ps := c.problems()
	c.checkPluginIDs(&ps)
	return ps.Err(keyRank)
}

// check collects the problems of one Config.
type check struct{ ps *config.Problems }

func (k check) not(key string, val any, form string) {
	k.ps.Add(key, config.Show(key, val)+" is not "+form)
}

func (k check) min(key string, val, least int64, form string) {
	if val < least {
		k.not(key, val, form)
	}
}

func (k check) positive(key string, d time.Duration) {
	if d <= 0 {
		k.not(key, d, formPosDuration)
	}
}

func (k check) oneOf(key, val, form string, allowed ...string) {
	for _, a := range allowed {
		if strings.EqualFold(val, a) {
			return
		}
	}
	k.not(key, val, form)
}

func (c Config) problems() config.Problems {
	var ps config.Problems
	k := check{ps: &ps}
	k.oneOf("log.level", c.Log.Level, formLevel, "debug", "info", "warn", "error")
	k.oneOf("log.format", c.Log.Format, formFormat, "text", "json")
	c.Redis.check(k)
	c.Worker.check(k)
	k.listen("health.addr", c.Health.Addr)
	k.oneOf("health.detail", c.Health.Detail, formDetail, "full", "minimal")
	k.positive("health.timeout", c.Health.Timeout)
	k.min("cache.max_value_bytes", int64(c.Cache.MaxValueBytes), 1, formBytes)
	k.min("cache.memory.max_entries", int64(c.Cache.Memory.MaxEntries), 1, formEntries)
	k.rates("ratelimit.limits", c.RateLimit.Limits)
	k.rates("ratelimit.tasks", c.RateLimit.Tasks)
	k.min("outbox.max_tasks", int64(c.Outbox.MaxTasks), 1, formTasks)
	k.min("outbox.max_bytes", c.Outbox.MaxBytes, 1, formBytes)
	if !(c.Outbox.DrainRate > 0) || math.IsInf(c.Outbox.DrainRate, 0) {
		k.not("outbox.drain_rate", c.Outbox.DrainRate, formDrainRate)
	}
	c.checkUI(k)
	c.checkPprof(k)
	return ps
}

// checkPluginIDs adds a problem for each plugin ID that is not compiled in.
func (c Config) checkPluginIDs(ps *config.Problems) {
	for _, id := range slices.Sorted(maps.Keys(c.Plugins)) {
		if _, ok := plugins.Lookup(id); !ok {
			ps.Add(config.PluginsKey+"."+id, "unknown plugin; compiled-in plugins are: "+pluginIDs())
		}
	}
}

// pluginIDs lists the compiled-in plugins for a message.
func pluginIDs() string {
	if ids := plugins.IDs(); len(ids) > 0 {
		return strings.Join(ids, ", ")
	}
	return "(none)"
}

func (r RedisConfig) check(k check) {
	switch r.Mode {
	case ModeStandalone:
		if r.URL != "" {
			k.redisURL(r.URL)
		} else if r.Host == "" {
			k.ps.Add("redis.host", "required in standalone mode without redis.url (a host name or IP)")
		}
	case ModeSentinel:
		if r.MasterName == "" {
			k.ps.Add("redis.master_name", "required in sentinel mode (the name of the master set, e.g. mymaster)")
		}
		k.addrs("redis.sentinel_addrs", r.SentinelAddrs, "sentinel")
	case ModeCluster:
		k.addrs("redis.addrs", r.Addrs, "cluster")
		if r.DB != 0 {
			k.ps.Add("redis.db", fmt.Sprintf("%d is not supported in cluster mode (Redis Cluster has database 0 only)", r.DB))
		}
	case ModeEmbedded:
	default:
		k.not("redis.mode", r.Mode, formMode)
	}
	if r.Port < 1 || r.Port > 65535 {
		k.not("redis.port", r.Port, formPort)
	}
	k.min("redis.db", int64(r.DB), 0, formDB)
	k.readable("redis.tls.ca_file", r.TLS.CAFile)
	k.readable("redis.tls.cert_file", r.TLS.CertFile)
	k.readable("redis.tls.key_file", r.TLS.KeyFile)
	if r.TLS.CertFile != "" && r.TLS.KeyFile == "" {
		k.ps.Add("redis.tls.key_file", "required when redis.tls.cert_file is set (the client's private key, PEM)")
	}
	if r.TLS.KeyFile != "" && r.TLS.CertFile == "" {
		k.ps.Add("redis.tls.cert_file", "required when redis.tls.key_file is set (the client's certificate, PEM)")
	}
	k.positive("redis.dial_timeout", r.DialTimeout)
	k.positive("redis.read_timeout", r.ReadTimeout)
	k.positive("redis.write_timeout", r.WriteTimeout)
	k.positive("redis.pool_timeout", r.PoolTimeout)
	k.min("redis.pool_size", int64(r.PoolSize), 1, formPoolSize)
	k.min("redis.min_idle_conns", int64(r.MinIdleConns), 0, formCount)
	k.min("redis.max_retries", int64(r.MaxRetries), -1, formMaxRetries)
	k.min("redis.dialer_retries", int64(r.DialerRetries), 0, formDialerRetries)
	k.positive("redis.ping_interval", r.PingInterval)
	k.positive("redis.backoff_min", r.BackoffMin)
	k.positive("redis.backoff_max", r.BackoffMax)
	if r.BackoffMin > 0 && r.BackoffMax > 0 && r.BackoffMin > r.BackoffMax {
		k.ps.Add("redis.backoff_min", fmt.Sprintf("%s is more than redis.backoff_max (%s); expected backoff_min <= backoff_max", r.BackoffMin, r.BackoffMax))
	}
	if !isHostPort(r.Embedded.Addr, 0) {
		k.not("redis.embedded.addr", r.Embedded.Addr, formDialAddr)
	}
}

// redisURL checks a standalone URL without ever echoing its password.
func (k check) redisURL(raw string) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's message quotes the URL, password and all.
		k.ps.Add("redis.url", "is not a valid URL (expected "+formURL+")")
		return
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		k.ps.Add("redis.url", fmt.Sprintf("scheme %q is not redis:// or rediss:// (expected %s)", u.Scheme, formURL))
		return
	}
	if u.Host == "" {
		k.ps.Add("redis.url", "has no host (expected "+formURL+")")
		return
	}
	if _, err := redis.ParseURL(raw); err != nil {
		// go-redis names the bad path, db or option here, not the userinfo;
		// strip it anyway in case a later version quotes more.
		msg := strings.TrimPrefix(err.Error(), "redis: ")
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, config.RedactedValue)
		}
		k.ps.Add("redis.url", msg+" (expected "+formURL+")")
	}
}

func (k check) addrs(key string, addrs []string, mode string) {
	if len(addrs) == 0 {
		k.ps.Add(key, "required in "+mode+" mode ("+formAddrList+")")
		return
	}
	for _, a := range addrs {
		if !isHostPort(a, 1) {
			k.not(key, a, formDialAddr)
		}
	}
}

func (k check) listen(key, addr string) {
	if _, port, err := net.SplitHostPort(addr); err != nil || !isPort(port, 0) {
		k.not(key, addr, formListen)
	}
}

func (k check) readable(key, path string) {
	if path == "" {
		return
	}
	f, err := os.Open(path)
	if err == nil {
		var st os.FileInfo
		st, err = f.Stat()
		if err == nil && st.IsDir() {
			err = errors.New("is a directory")
		}
		_ = f.Close()
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		k.ps.Add(key, fmt.Sprintf("cannot read %q: %v (expected a readable PEM file)", path, err))
	}
}

func (k check) rates(key string, rates map[string]string) {
	for _, name := range slices.Sorted(maps.Keys(rates)) {
		rkey := key + "." + name
		if strings.TrimSpace(name) == "" {
			k.ps.Add(rkey, "empty name (expected a limiter name or task type)")
			continue
		}
		r, err := limiter.NewRateFromFormatted(rates[name])
		if err != nil || r.Limit < 1 {
			k.not(rkey, rates[name], formRate)
		}
	}
}

func (w WorkerConfig) check(k check) {
	k.min("worker.concurrency", int64(w.Concurrency), 1, formConcurrency)
	if len(w.Queues) == 0 {
		k.ps.Add("worker.queues", "at least one queue is required ("+formQueues+")")
	}
	for _, name := range slices.Sorted(maps.Keys(w.Queues)) {
		key := "worker.queues." + name
		switch {
		case strings.TrimSpace(name) == "":
			k.ps.Add(key, "empty queue name (asynq v0.26.0 silently ignores a blank name)")
			continue
		case strings.ContainsFunc(name, unicode.IsSpace):
			k.not(key, name, "a queue name (no whitespace)")
			continue
		case strings.ContainsAny(name, "{}"):
			k.not(key, name, `a queue name (no "{" or "}": asynq puts the name in a {hash tag} for Redis Cluster)`)
			continue
		}
		k.min(key, int64(w.Queues[name]), 1, formWeight)
	}
	k.positive("worker.shutdown_timeout", w.ShutdownTimeout)
	k.positive("worker.task_timeout", w.TaskTimeout)
	k.min("worker.max_retry", int64(w.MaxRetry), 0, formMaxRetry)
	k.positive("worker.retry_base_delay", w.RetryBaseDelay)
	k.positive("worker.retry_max_delay", w.RetryMaxDelay)
	k.min("worker.fetchers", int64(w.Fetchers), 1, formFetchers)
	k.oneOf("worker.wakeup", w.Wakeup, formWakeup, "auto", "notify", "poll", "off")
	if w.RetryBaseDelay > 0 && w.RetryMaxDelay > 0 && w.RetryBaseDelay > w.RetryMaxDelay {
		k.ps.Add("worker.retry_base_delay", fmt.Sprintf("%s is more than worker.retry_max_delay (%s); expected retry_base_delay <= retry_max_delay", w.RetryBaseDelay, w.RetryMaxDelay))
	}
}

func (c Config) checkUI(k check) {
	ui := c.UI
	if ui.Addr != "" {
		k.listen("ui.addr", ui.Addr)
	}
	if !ui.Enabled {
		return // auth settings of a disabled UI are not checked
	}
	if ui.Auth.Username != "" && ui.Auth.Password == "" {
		k.ps.Add("ui.auth.password", "required when ui.auth.username is set (basic auth needs both)")
	}
	if ui.Auth.Password != "" && ui.Auth.Username == "" {
		k.ps.Add("ui.auth.username", "required when ui.auth.password is set (basic auth needs both)")
	}
	addr, from := ui.Addr, "ui.addr"
	if addr == "" {
		addr, from = c.Health.Addr, "health.addr"
	}
	basic := ui.Auth.Username != "" && ui.Auth.Password != ""
	if !isLoopback(addr) && !basic && ui.Auth.Token == "" {
		k.ps.Add("ui.auth", fmt.Sprintf("required when the UI listens on %q (%s), which is not loopback: "+
			"set ui.auth.username and ui.auth.password, or ui.auth.token, or listen on 127.0.0.1", addr, from))
	}
}

// checkPprof requires credentials for the pprof endpoints on a listener
// that is not loopback.
func (c Config) checkPprof(k check) {
	a := c.UI.Auth
	if c.Health.Pprof && !isLoopback(c.Health.Addr) && !(a.Username != "" && a.Password != "") && a.Token == "" {
		k.ps.Add("health.pprof", fmt.Sprintf("needs the ui.auth credentials (ui.auth.username and ui.auth.password, or ui.auth.token) "+
			"when health.addr %q is not loopback, or listen on 127.0.0.1", c.Health.Addr))
	}
}

// isHostPort reports whether s is host:port with a non-empty host and a port
// of at least least.
func isHostPort(s string, least int) bool {
	host, port, err := net.SplitHostPort(s)
	return err == nil && host != "" && isPort(port, least)
}

func isPort(s string, least int) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= least && n <= 65535
}

// isLoopback reports whether a listen address binds loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// formOf returns the form expected at key, whose Go type is t.
func formOf(key string, t reflect.Type) string {
	if f, ok := keyForms[key]; ok {
		return f
	}
	for _, k := range positiveDurations {
		if k == key {
			return formPosDuration
		}
	}
	switch parent := key[:max(strings.LastIndex(key, "."), 0)]; parent {
	case "worker.queues":
		return formWeight
	case "ratelimit.limits", "ratelimit.tasks":
		return formRate
	case config.PluginsKey:
		return formPlugin
	}
	return config.TypeForm(t)
}
