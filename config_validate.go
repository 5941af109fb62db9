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
// The forms of bounded numbers come from bounds.
const (
	formMode          = "a Redis mode (standalone, sentinel, cluster or embedded)"
	formURL           = "redis://[user:password@]host:port[/db] or rediss://..."
	formDialAddr      = "a host:port address"
	formAddrList      = "a list of host:port addresses (comma-separated in the environment)"
	formListen        = "a listen address (host:port, e.g. 127.0.0.1:8080 or :8080)"
	formPosDuration   = "a positive duration, such as 500ms, 2s or 1m"
	formDuration      = "a duration with a unit, such as 500ms, 2s or 1m"
	formQueues        = "a map of queue name to weight (name=weight,name=weight in the environment)"
	formWakeup        = "a wake-up source (auto, notify, poll or off)"
	formLevel         = "a log level (debug, info, warn or error)"
	formFormat        = "a log format (text or json)"
	formDetail        = "a detail level (full or minimal)"
	formRates         = "a map of name to rate (name=rate,name=rate in the environment)"
	formRate          = `a rate in ulule's format, <limit>-<period> with limit >= 1 and period S, M, H or D (e.g. "10-S" or "1000-H")`
	formPlugin        = "a plugin section (a map of keys, or empty to run the plugin with its defaults)"
	formDrainRate     = "a rate in tasks per second (number > 0 and <= 1000000)"
	maxDrainRate      = 1e6
	maxQueueWeightSum = 1000
)

// Limits of the config itself, checked before it is parsed or decoded: a
// bigger file, or more keys, is a config error rather than a long stall or
// an out-of-memory crash.
const (
	// MaxFileBytes bounds the config file (1 MiB); a device such as
	// /dev/zero is refused at that size.
	MaxFileBytes = 1 << 20
	// MaxKeys bounds the keys of all layers together, counting every map
	// entry and list item (plugin sections included).
	MaxKeys = 10000
)

// bound is the allowed range of one number that sizes memory, CPU or
// retries. lo and hi are inclusive; for a duration they are nanoseconds.
type bound struct {
	key    string
	lo, hi int64
	noun   string // "a pool size"; empty for a duration
	note   string // said after the range, e.g. "-1 disables retries"
}

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
	ms  = int64(time.Millisecond)
	sec = int64(time.Second)
	mnt = int64(time.Minute)
	hr  = int64(time.Hour)
)

// bounds is every bounded number, in the order of the keys in Config. An
// integer outside its range would exhaust memory (pool sizes, entry counts),
// burn CPU (queue weights, the ping interval), wrap around in asynq's 32-bit
// fields (retries) or never work (ports, databases).
var bounds = []bound{
	{key: "redis.port", lo: 1, hi: 65535, noun: "a port number"},
	{key: "redis.db", lo: 0, hi: 1023, noun: "a database number"},
	{key: "redis.dial_timeout", lo: 10 * ms, hi: mnt},
	{key: "redis.read_timeout", lo: 10 * ms, hi: mnt},
	{key: "redis.write_timeout", lo: 10 * ms, hi: mnt},
	{key: "redis.pool_timeout", lo: 10 * ms, hi: mnt},
	{key: "redis.pool_size", lo: 1, hi: 1000, noun: "a pool size"},
	{key: "redis.min_idle_conns", lo: 0, hi: 1000, noun: "a count", note: "at most redis.pool_size"},
	{key: "redis.max_retries", lo: -1, hi: 10, noun: "a retry count", note: "-1 disables retries, 0 means go-redis' default of 3"},
	{key: "redis.dialer_retries", lo: 0, hi: 10, noun: "a retry count", note: "0 means go-redis' default of 5"},
	{key: "redis.ping_interval", lo: 100 * ms, hi: mnt},
	{key: "redis.backoff_min", lo: 10 * ms, hi: mnt},
	{key: "redis.backoff_max", lo: 10 * ms, hi: 10 * mnt},
	{key: "worker.concurrency", lo: 1, hi: 10000, noun: "a concurrency"},
	{key: "worker.shutdown_timeout", lo: 100 * ms, hi: hr},
	{key: "worker.task_timeout", lo: 10 * ms, hi: 7 * 24 * hr},
	{key: "worker.max_retry", lo: 0, hi: 1000, noun: "a retry count"},
	{key: "worker.retry_base_delay", lo: 10 * ms, hi: 24 * hr},
	{key: "worker.retry_max_delay", lo: 10 * ms, hi: 30 * 24 * hr},
	{key: "worker.max_payload_bytes", lo: kib, hi: 64 * mib, noun: "a size in bytes"},
	{key: "worker.fetchers", lo: 1, hi: 64, noun: "a fetcher count"},
	{key: "worker.dequeue_batch", lo: 1, hi: 1000, noun: "a task count"},
	{key: "health.timeout", lo: 10 * ms, hi: mnt},
	{key: "cache.max_value_bytes", lo: 1, hi: 64 * mib, noun: "a size in bytes"},
	{key: "cache.memory.max_entries", lo: 1, hi: 1000000, noun: "an entry count"},
	{key: "outbox.max_tasks", lo: 1, hi: 10000000, noun: "a task count"},
	{key: "outbox.max_bytes", lo: 2 * kib, hi: 16 * gib, noun: "a size in bytes", note: "at least twice worker.max_payload_bytes"},
}

// weightBound is the range of each worker.queues weight.
var weightBound = bound{key: "worker.queues", lo: 1, hi: maxQueueWeightSum, noun: "a queue weight",
	note: "asynq v0.26.0 silently ignores a queue whose weight is <= 0"}

// boundOf returns the bound of key.
func boundOf(key string) (bound, bool) {
	for _, b := range bounds {
		if b.key == key {
			return b, true
		}
	}
	return bound{}, false
}

// form says what b admits: "a pool size (integer 1-1000)" or "a duration
// from 10ms to 1m".
func (b bound) form() string {
	var s string
	if b.noun == "" {
		s = "a duration with a unit, from " + shortDuration(time.Duration(b.lo)) + " to " + shortDuration(time.Duration(b.hi))
		if b.note != "" {
			s += " (" + b.note + ")"
		}
		return s
	}
	s = fmt.Sprintf("%s (integer %d-%d", b.noun, b.lo, b.hi)
	if strings.HasPrefix(b.noun, "a size in bytes") {
		s += ", " + shortBytes(b.lo) + " to " + shortBytes(b.hi)
	}
	if b.note != "" {
		s += "; " + b.note
	}
	return s + ")"
}

// shortDuration prints d in its largest whole unit: 10ms, 1m, 168h.
func shortDuration(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if d != 0 && d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	return d.String()
}

// shortBytes prints n in its largest whole binary unit: 1 KiB, 64 MiB.
func shortBytes(n int64) string {
	for _, u := range []struct {
		n    int64
		name string
	}{{gib, "GiB"}, {mib, "MiB"}, {kib, "KiB"}} {
		if n != 0 && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + " " + u.name
		}
	}
	return strconv.FormatInt(n, 10) + " B"
}

// keyForms names the form of the keys whose form is narrower than their
// type and that have no bound.
var keyForms = map[string]string{
	"redis.mode":           formMode,
	"redis.sentinel_addrs": formAddrList,
	"redis.addrs":          formAddrList,
	"redis.embedded.addr":  formDialAddr,
	"worker.queues":        formQueues,
	"worker.wakeup":        formWakeup,
	"log.level":            formLevel,
	"log.format":           formFormat,
	"health.addr":          formListen,
	"health.detail":        formDetail,
	"ratelimit.limits":     formRates,
	"ratelimit.tasks":      formRates,
	"outbox.drain_rate":    formDrainRate,
	"ui.addr":              formListen,
}

// Validate checks c.WithDefaults(), the config that New would run, against
// every rule and reports every problem at once, each naming its key and the
// form it expects, as an error that matches ErrInvalidConfig, including
// plugin IDs that are not compiled in. Each plugin checks its own section
// when it is provisioned (CheckConfig runs that too). LoadConfig does not
// check plugin IDs, so that a command that only enqueues can load a
// worker's config.
func (c Config) Validate() error {
	c = c.WithDefaults()
	ps := c.problems()
	c.checkPluginIDs(&ps)
	return ps.Err(keyRank)
}

// check collects the problems of one Config.
type check struct{ ps *config.Problems }

func (k check) not(key string, val any, form string) {
	k.ps.Add(key, config.Show(key, val)+" is not "+form)
}

// within reports val, found at b.key (or at key, below a map), when it is
// outside b.
func (k check) within(key string, val int64, b bound) {
	if val < b.lo || val > b.hi {
		if b.noun == "" {
			k.not(key, time.Duration(val), b.form())
			return
		}
		k.not(key, val, b.form())
	}
}

// bounded checks every number of c against its bound.
func (c Config) bounded(k check) {
	v := reflect.ValueOf(c)
	for _, b := range bounds {
		f, ok := fieldAt(v, b.key)
		if !ok {
			panic("config: bound for unknown key " + b.key)
		}
		switch f.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			k.within(b.key, f.Int(), b)
		default:
			panic("config: bound for non-integer key " + b.key)
		}
	}
}

// fieldAt returns the field of the struct v at a dotted key.
func fieldAt(v reflect.Value, key string) (reflect.Value, bool) {
	for name := range strings.SplitSeq(key, ".") {
		if v.Kind() != reflect.Struct {
			return reflect.Value{}, false
		}
		t, found := v.Type(), false
		for i := range t.NumField() {
			if n, ok := config.FieldKey(t.Field(i)); ok && n == name {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return reflect.Value{}, false
		}
	}
	return v, true
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
	c.bounded(k)
	c.Redis.check(k)
	c.Worker.check(k)
	k.listen("health.addr", c.Health.Addr)
	k.oneOf("health.detail", c.Health.Detail, formDetail, "full", "minimal")
	k.rates("ratelimit.limits", c.RateLimit.Limits)
	k.rates("ratelimit.tasks", c.RateLimit.Tasks)
	if !(c.Outbox.DrainRate > 0) || c.Outbox.DrainRate > maxDrainRate || math.IsNaN(c.Outbox.DrainRate) {
		k.not("outbox.drain_rate", c.Outbox.DrainRate, formDrainRate)
	}
	if p := int64(c.Worker.MaxPayloadBytes); p > 0 && c.Outbox.MaxBytes > 0 && c.Outbox.MaxBytes < 2*p {
		k.ps.Add("outbox.max_bytes", fmt.Sprintf("%d is less than twice worker.max_payload_bytes (%d); "+
			"expected room for a task of the largest allowed payload, which the outbox stores base64-encoded", c.Outbox.MaxBytes, p))
	}
	c.checkUI(k)
	c.checkSchedules(k)
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
			k.redisURL(r)
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
	k.readable("redis.tls.ca_file", r.TLS.CAFile)
	k.readable("redis.tls.cert_file", r.TLS.CertFile)
	k.readable("redis.tls.key_file", r.TLS.KeyFile)
	if r.TLS.CertFile != "" && r.TLS.KeyFile == "" {
		k.ps.Add("redis.tls.key_file", "required when redis.tls.cert_file is set (the client's private key, PEM)")
	}
	if r.TLS.KeyFile != "" && r.TLS.CertFile == "" {
		k.ps.Add("redis.tls.cert_file", "required when redis.tls.key_file is set (the client's certificate, PEM)")
	}
	if r.MinIdleConns > r.PoolSize && r.PoolSize > 0 {
		k.ps.Add("redis.min_idle_conns", fmt.Sprintf("%d is more than redis.pool_size (%d); expected min_idle_conns <= pool_size", r.MinIdleConns, r.PoolSize))
	}
	if r.BackoffMin > 0 && r.BackoffMax > 0 && r.BackoffMin > r.BackoffMax {
		k.ps.Add("redis.backoff_min", fmt.Sprintf("%s is more than redis.backoff_max (%s); expected backoff_min <= backoff_max", r.BackoffMin, r.BackoffMax))
	}
	if !isHostPort(r.Embedded.Addr, 0) {
		k.not("redis.embedded.addr", r.Embedded.Addr, formDialAddr)
	}
}

// urlQueryOptions are the query options go-redis v9.23's ParseURL accepts;
// only these names are ever quoted in a message (another name could be a
// piece of an unencoded password).
var urlQueryOptions = []string{
	"db", "protocol", "client_name", "max_retries", "min_retry_backoff", "max_retry_backoff",
	"dial_timeout", "read_timeout", "write_timeout", "pool_fifo", "pool_size", "pool_timeout",
	"min_idle_conns", "max_idle_conns", "max_active_conns", "max_concurrent_dials",
	"pipeline_pool_size", "pipeline_read_buffer_size", "pipeline_write_buffer_size",
	"conn_max_idle_time", "idle_timeout", "conn_max_lifetime", "max_conn_age",
	"conn_max_lifetime_jitter", "skip_verify",
}

// redisURL checks a standalone URL in full: scheme, host, port, database
// (path or ?db=), query options, and that its credentials agree with
// redis.username and redis.password. No message holds any part of the
// URL: a password with an unencoded "@", "/" or "?" ends up in the host,
// path or query, so even those parts may hold a piece of a secret.
func (k check) redisURL(r RedisConfig) {
	fail := func(what string) { k.ps.Add("redis.url", what+" (expected "+formURL+")") }
	u, err := url.Parse(r.URL)
	if err != nil {
		fail("is not a valid URL; a character such as @, /, ?, # or % in the user name or password must be percent-encoded")
		return
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		fail("does not start with redis:// or rediss://")
		return
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		fail("has no host")
		return
	}
	if p := u.Port(); p != "" && !isPort(p, 1) {
		fail("has a port outside 1-65535")
		return
	}
	b, _ := boundOf("redis.db")
	dbOK := func(s string) bool {
		n, err := strconv.ParseInt(s, 10, 64)
		return err == nil && n >= b.lo && n <= b.hi && s == strconv.FormatInt(n, 10)
	}
	switch path := strings.TrimPrefix(u.Path, "/"); {
	case strings.Contains(path, "/"):
		fail("has a path of more than one segment; the path is the database number")
		return
	case path != "" && !dbOK(path):
		fail(fmt.Sprintf("has a path that is not a database number (integer %d-%d)", b.lo, b.hi))
		return
	}
	q := u.Query()
	if vs, ok := q["db"]; ok && (len(vs) != 1 || !dbOK(vs[0])) {
		fail(fmt.Sprintf("has a db option that is not a database number (integer %d-%d)", b.lo, b.hi))
		return
	}
	for name := range q {
		if !slices.Contains(urlQueryOptions, name) {
			fail("has a query option that go-redis does not know; it knows " + strings.Join(urlQueryOptions, ", "))
			return
		}
	}
	if _, err := redis.ParseURL(r.URL); err != nil {
		// Every name that go-redis' message could hold was checked above;
		// its message would quote the value.
		fail("has a query option whose value go-redis cannot read (numbers, durations such as 500ms, or true/false)")
		return
	}
	if u.User == nil {
		return
	}
	if name := u.User.Username(); name != "" && r.Username != "" && name != r.Username {
		k.ps.Add("redis.username", "differs from the user name in redis.url; set it in one place "+
			"(redis.username and redis.password fill in a redis.url that has none)")
	}
	if pass, ok := u.User.Password(); ok && pass != "" && r.Password != "" && pass != r.Password {
		k.ps.Add("redis.password", "differs from the password in redis.url; set it in one place "+
			"(redis.username and redis.password fill in a redis.url that has none)")
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
		k.within(key, int64(w.Queues[name]), weightBound)
	}
	sum := int64(0)
	for _, wt := range w.Queues {
		sum += int64(max(wt, 0))
	}
	if sum > maxQueueWeightSum {
		k.ps.Add("worker.queues", fmt.Sprintf("the weights add up to %d, more than %d "+
			"(asynq builds a list of that many queue names for every dequeue)", sum, maxQueueWeightSum))
	}
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
	if f := scheduleForm(key); f != "" {
		return f
	}
	if b, ok := boundOf(key); ok {
		return b.form()
	}
	switch parent := key[:max(strings.LastIndex(key, "."), 0)]; parent {
	case "worker.queues":
		return weightBound.form()
	case "ratelimit.limits", "ratelimit.tasks":
		return formRate
	case config.PluginsKey:
		return formPlugin
	}
	return config.TypeForm(t)
}
