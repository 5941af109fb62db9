package taskhost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskhost/taskhost/internal/config"
)

func TestDefaultIsValid(t *testing.T) {
	t.Parallel()
	require.NoError(t, DefaultConfig().Validate())
}

func TestValidateRules(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pem := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(pem, []byte("-----BEGIN CERTIFICATE-----\n"), 0o600))
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name   string
		mutate func(c *Config)
		key    string
		msg    string
	}{
		{"mode enum", func(c *Config) { c.Redis.Mode = "replica" }, "redis.mode",
			`"replica" is not a Redis mode (standalone, sentinel, cluster or embedded)`},
		{"url scheme", func(c *Config) { c.Redis.URL = "http://127.0.0.1:6379" }, "redis.url",
			`does not start with redis:// or rediss://`},
		{"url unparseable", func(c *Config) { c.Redis.URL = "redis://u:pa%zzss@127.0.0.1:6379" }, "redis.url",
			`is not a valid URL; a character such as @, /, ?, # or % in the user name or password must be percent-encoded (expected redis://[user:password@]host:port[/db] or rediss://...)`},
		{"url bad db", func(c *Config) { c.Redis.URL = "redis://127.0.0.1:6379/x" }, "redis.url",
			`has a path that is not a database number (integer 0-1023)`},
		{"url db too big", func(c *Config) { c.Redis.URL = "redis://127.0.0.1:6379/99999" }, "redis.url",
			`has a path that is not a database number (integer 0-1023)`},
		{"url db negative", func(c *Config) { c.Redis.URL = "redis://127.0.0.1:6379/-1" }, "redis.url",
			`has a path that is not a database number (integer 0-1023)`},
		{"url db option", func(c *Config) { c.Redis.URL = "redis://127.0.0.1:6379?db=2000" }, "redis.url",
			`has a db option that is not a database number (integer 0-1023)`},
		{"url two segments", func(c *Config) { c.Redis.URL = "redis://127.0.0.1:6379/0/1" }, "redis.url",
			`has a path of more than one segment`},
		{"url port", func(c *Config) { c.Redis.URL = "redis://127.0.0.1:99999/0" }, "redis.url", "has a port outside 1-65535"},
		{"url port zero", func(c *Config) { c.Redis.URL = "redis://127.0.0.1:0/0" }, "redis.url", "has a port outside 1-65535"},
		{"url unknown option", func(c *Config) { c.Redis.URL = "redis://127.0.0.1:6379/0?colour=red" }, "redis.url",
			"has a query option that go-redis does not know"},
		{"url bad option value", func(c *Config) { c.Redis.URL = "redis://127.0.0.1:6379/0?dial_timeout=soon" }, "redis.url",
			"has a query option whose value go-redis cannot read"},
		{"url no host", func(c *Config) { c.Redis.URL = "redis:///0" }, "redis.url", "has no host"},
		{"url password conflict", func(c *Config) { c.Redis.URL = "redis://:one@127.0.0.1:6379"; c.Redis.Password = "two" },
			"redis.password", "differs from the password in redis.url; set it in one place"},
		{"url username conflict", func(c *Config) { c.Redis.URL = "redis://alice@127.0.0.1:6379"; c.Redis.Username = "bob" },
			"redis.username", "differs from the user name in redis.url"},
		{"standalone host", func(c *Config) { c.Redis.Host = "" }, "redis.host",
			"required in standalone mode without redis.url"},
		{"port low", func(c *Config) { c.Redis.Port = 0 }, "redis.port", "0 is not a port number (integer 1-65535)"},
		{"port high", func(c *Config) { c.Redis.Port = 65536 }, "redis.port", "65536 is not a port number (integer 1-65535)"},
		{"db", func(c *Config) { c.Redis.DB = -1 }, "redis.db", "-1 is not a database number (integer 0-1023)"},
		{"cluster db", func(c *Config) { c.Redis.Mode = ModeCluster; c.Redis.Addrs = []string{"10.0.0.1:7000"}; c.Redis.DB = 2 }, "redis.db",
			"2 is not supported in cluster mode"},
		{"sentinel master", func(c *Config) { c.Redis.Mode = ModeSentinel; c.Redis.SentinelAddrs = []string{"10.0.0.1:26379"} }, "redis.master_name",
			"required in sentinel mode (the name of the master set"},
		{"sentinel addrs", func(c *Config) { c.Redis.Mode = ModeSentinel; c.Redis.MasterName = "m" }, "redis.sentinel_addrs",
			"required in sentinel mode (a list of host:port addresses"},
		{"sentinel addr form", func(c *Config) {
			c.Redis.Mode = ModeSentinel
			c.Redis.MasterName = "m"
			c.Redis.SentinelAddrs = []string{"10.0.0.1"}
		}, "redis.sentinel_addrs", `"10.0.0.1" is not a host:port address`},
		{"cluster addrs", func(c *Config) { c.Redis.Mode = ModeCluster }, "redis.addrs", "required in cluster mode"},
		{"cluster addr form", func(c *Config) { c.Redis.Mode = ModeCluster; c.Redis.Addrs = []string{":7000"} }, "redis.addrs",
			`":7000" is not a host:port address`},
		{"tls ca unreadable", func(c *Config) { c.Redis.TLS.CAFile = missing }, "redis.tls.ca_file",
			`cannot read "` + missing + `": no such file or directory (expected a readable PEM file)`},
		{"tls ca is dir", func(c *Config) { c.Redis.TLS.CAFile = dir }, "redis.tls.ca_file", "is a directory"},
		{"tls cert needs key", func(c *Config) { c.Redis.TLS.CertFile = pem }, "redis.tls.key_file", "required when redis.tls.cert_file is set"},
		{"tls key needs cert", func(c *Config) { c.Redis.TLS.KeyFile = pem }, "redis.tls.cert_file", "required when redis.tls.key_file is set"},
		{"dial timeout", func(c *Config) { c.Redis.DialTimeout = 0 }, "redis.dial_timeout", "0s is not a duration with a unit, from 10ms to 1m"},
		{"read timeout", func(c *Config) { c.Redis.ReadTimeout = -1 }, "redis.read_timeout", "-1ns is not a duration with a unit, from 10ms to 1m"},
		{"write timeout", func(c *Config) { c.Redis.WriteTimeout = 0 }, "redis.write_timeout", "is not a duration with a unit, from 10ms to 1m"},
		{"pool timeout", func(c *Config) { c.Redis.PoolTimeout = 0 }, "redis.pool_timeout", "is not a duration with a unit, from 10ms to 1m"},
		{"ping interval", func(c *Config) { c.Redis.PingInterval = 0 }, "redis.ping_interval", "is not a duration with a unit, from 100ms to 1m"},
		{"ping interval 1ns", func(c *Config) { c.Redis.PingInterval = 1 }, "redis.ping_interval", "1ns is not a duration with a unit, from 100ms to 1m"},
		{"backoff min", func(c *Config) { c.Redis.BackoffMin = 0 }, "redis.backoff_min", "is not a duration with a unit, from 10ms to 1m"},
		{"backoff max", func(c *Config) { c.Redis.BackoffMax = 0 }, "redis.backoff_max", "is not a duration with a unit, from 10ms to 10m"},
		{"backoff order", func(c *Config) { c.Redis.BackoffMin = 3 * time.Second }, "redis.backoff_min",
			"3s is more than redis.backoff_max (2s); expected backoff_min <= backoff_max"},
		{"pool size", func(c *Config) { c.Redis.PoolSize = 0 }, "redis.pool_size", "0 is not a pool size (integer 1-1000)"},
		{"pool size huge", func(c *Config) { c.Redis.PoolSize = 100000000 }, "redis.pool_size", "100000000 is not a pool size (integer 1-1000)"},
		{"min idle above pool", func(c *Config) { c.Redis.MinIdleConns = 30 }, "redis.min_idle_conns", "30 is more than redis.pool_size (20)"},
		{"min idle", func(c *Config) { c.Redis.MinIdleConns = -1 }, "redis.min_idle_conns", "-1 is not a count (integer 0-1000; at most redis.pool_size)"},
		{"max retries", func(c *Config) { c.Redis.MaxRetries = -2 }, "redis.max_retries",
			"-2 is not a retry count (integer -1-10; -1 disables retries, 0 means go-redis' default of 3)"},
		{"dialer retries", func(c *Config) { c.Redis.DialerRetries = -1 }, "redis.dialer_retries",
			"-1 is not a retry count (integer 0-10; 0 means go-redis' default of 5)"},
		{"embedded addr", func(c *Config) { c.Redis.Embedded.Addr = "6380" }, "redis.embedded.addr", `"6380" is not a host:port address`},
		{"concurrency", func(c *Config) { c.Worker.Concurrency = 0 }, "worker.concurrency", "0 is not a concurrency (integer 1-10000)"},
		{"queues empty", func(c *Config) { c.Worker.Queues = nil }, "worker.queues", "at least one queue is required"},
		{"queue blank", func(c *Config) { c.Worker.Queues = map[string]int{" ": 1} }, "worker.queues. ",
			"empty queue name (asynq v0.26.0 silently ignores a blank name)"},
		{"queue whitespace", func(c *Config) { c.Worker.Queues = map[string]int{"a b": 1} }, "worker.queues.a b",
			`"a b" is not a queue name (no whitespace)`},
		{"queue hash tag", func(c *Config) { c.Worker.Queues = map[string]int{"a}b": 1} }, "worker.queues.a}b",
			`"a}b" is not a queue name (no "{" or "}"`},
		{"queue weight", func(c *Config) { c.Worker.Queues = map[string]int{"low": 0} }, "worker.queues.low",
			"0 is not a queue weight (integer 1-1000; asynq v0.26.0 silently ignores a queue whose weight is <= 0)"},
		{"queue weight huge", func(c *Config) { c.Worker.Queues = map[string]int{"low": 5000000} }, "worker.queues.low",
			"5000000 is not a queue weight (integer 1-1000"},
		{"queue weight sum", func(c *Config) { c.Worker.Queues = map[string]int{"a": 600, "b": 600} }, "worker.queues",
			"the weights add up to 1200, more than 1000"},
		{"shutdown timeout", func(c *Config) { c.Worker.ShutdownTimeout = 0 }, "worker.shutdown_timeout", "is not a duration with a unit, from 100ms to 1h"},
		{"task timeout", func(c *Config) { c.Worker.TaskTimeout = 0 }, "worker.task_timeout", "is not a duration with a unit, from 10ms to 168h"},
		{"max retry", func(c *Config) { c.Worker.MaxRetry = -1 }, "worker.max_retry", "-1 is not a retry count (integer 0-1000)"},
		{"max retry int32", func(c *Config) { c.Worker.MaxRetry = 2147483648 }, "worker.max_retry", "2147483648 is not a retry count (integer 0-1000)"},
		{"retry base delay", func(c *Config) { c.Worker.RetryBaseDelay = 0 }, "worker.retry_base_delay", "is not a duration with a unit, from 10ms to 24h"},
		{"retry max delay", func(c *Config) { c.Worker.RetryMaxDelay = 0 }, "worker.retry_max_delay", "is not a duration with a unit, from 10ms to 720h"},
		{"max payload", func(c *Config) { c.Worker.MaxPayloadBytes = 100 }, "worker.max_payload_bytes",
			"100 is not a size in bytes (integer 1024-67108864, 1 KiB to 64 MiB)"},
		{"retry delay order", func(c *Config) { c.Worker.RetryBaseDelay = 2 * time.Hour }, "worker.retry_base_delay",
			"2h0m0s is more than worker.retry_max_delay (1h0m0s)"},
		{"fetchers", func(c *Config) { c.Worker.Fetchers = 0 }, "worker.fetchers", "0 is not a fetcher count (integer 1-64)"},
		{"wakeup", func(c *Config) { c.Worker.Wakeup = "push" }, "worker.wakeup", `"push" is not a wake-up source (auto, notify, poll or off)`},
		{"log level", func(c *Config) { c.Log.Level = "trace" }, "log.level", `"trace" is not a log level (debug, info, warn or error)`},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, "log.format", `"xml" is not a log format (text or json)`},
		{"health addr", func(c *Config) { c.Health.Addr = "8080" }, "health.addr",
			`"8080" is not a listen address (host:port, e.g. 127.0.0.1:8080 or :8080)`},
		{"health detail", func(c *Config) { c.Health.Detail = "some" }, "health.detail", `"some" is not a detail level (full or minimal)`},
		{"health timeout", func(c *Config) { c.Health.Timeout = 0 }, "health.timeout", "is not a duration with a unit, from 10ms to 1m"},
		{"cache value bytes", func(c *Config) { c.Cache.MaxValueBytes = 0 }, "cache.max_value_bytes", "0 is not a size in bytes (integer 1-67108864, 1 B to 64 MiB)"},
		{"cache entries", func(c *Config) { c.Cache.Memory.MaxEntries = 0 }, "cache.memory.max_entries", "0 is not an entry count (integer 1-1000000)"},
		{"limit rate", func(c *Config) { c.RateLimit.Limits = map[string]string{"api": "10/s"} }, "ratelimit.limits.api",
			`"10/s" is not a rate in ulule's format, <limit>-<period> with limit >= 1 and period S, M, H or D (e.g. "10-S" or "1000-H")`},
		{"task rate", func(c *Config) { c.RateLimit.Tasks = map[string]string{"email:send": "10-W"} }, "ratelimit.tasks.email:send",
			`"10-W" is not a rate in ulule's format`},
		{"zero rate", func(c *Config) { c.RateLimit.Tasks = map[string]string{"t": "0-S"} }, "ratelimit.tasks.t", `"0-S" is not a rate`},
		{"outbox tasks", func(c *Config) { c.Outbox.MaxTasks = 0 }, "outbox.max_tasks", "0 is not a task count (integer 1-10000000)"},
		{"outbox bytes", func(c *Config) { c.Outbox.MaxBytes = 0 }, "outbox.max_bytes", "0 is not a size in bytes (integer 2048-17179869184, 2 KiB to 16 GiB; at least twice worker.max_payload_bytes)"},
		{"outbox bytes below payload", func(c *Config) { c.Outbox.MaxBytes = 1 << 20 }, "outbox.max_bytes",
			"1048576 is less than twice worker.max_payload_bytes (1048576)"},
		{"outbox drain", func(c *Config) { c.Outbox.DrainRate = 0 }, "outbox.drain_rate", "0 is not a rate in tasks per second (number > 0 and <= 1000000)"},
		{"outbox drain huge", func(c *Config) { c.Outbox.DrainRate = 1e9 }, "outbox.drain_rate", "1e+09 is not a rate in tasks per second"},
		{"ui addr", func(c *Config) { c.UI.Addr = "ui" }, "ui.addr", `"ui" is not a listen address`},
		{"ui open on health addr", func(c *Config) { c.UI.Enabled = true; c.Health.Addr = "0.0.0.0:8080" }, "ui.auth",
			`required when the UI listens on "0.0.0.0:8080" (health.addr), which is not loopback`},
		{"ui open on own addr", func(c *Config) { c.UI.Enabled = true; c.UI.Addr = ":8081" }, "ui.auth",
			`required when the UI listens on ":8081" (ui.addr), which is not loopback`},
		{"ui username only", func(c *Config) { c.UI.Enabled = true; c.UI.Auth.Username = "admin" }, "ui.auth.password", "required when ui.auth.username is set"},
		{"ui password only", func(c *Config) { c.UI.Enabled = true; c.UI.Auth.Password = "pw" }, "ui.auth.username", "required when ui.auth.password is set"},
		{"pprof open", func(c *Config) { c.Health.Pprof = true; c.Health.Addr = ":8080" }, "health.pprof",
			`needs the ui.auth credentials (ui.auth.username and ui.auth.password, or ui.auth.token) when health.addr ":8080" is not loopback`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			requireProblem(t, err, tt.key, tt.msg)
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(c *Config)
	}{
		{"rediss url", func(c *Config) { c.Redis.URL = "rediss://user:pw@redis.example:6380/2" }},
		{"sentinel", func(c *Config) {
			c.Redis.Mode = ModeSentinel
			c.Redis.MasterName = "mymaster"
			c.Redis.SentinelAddrs = []string{"10.0.0.1:26379", "[::1]:26379"}
		}},
		{"cluster", func(c *Config) { c.Redis.Mode = ModeCluster; c.Redis.Addrs = []string{"n1:7000"} }},
		{"embedded", func(c *Config) { c.Redis.Mode = ModeEmbedded }},
		{"ui loopback without auth", func(c *Config) { c.UI.Enabled = true; c.UI.Addr = "localhost:8081" }},
		{"ui ipv6 loopback", func(c *Config) { c.UI.Enabled = true; c.Health.Addr = "[::1]:8080" }},
		{"ui public with token", func(c *Config) { c.UI.Enabled = true; c.Health.Addr = ":8080"; c.UI.Auth.Token = "t" }},
		{"ui public with basic", func(c *Config) {
			c.UI.Enabled = true
			c.UI.Addr = "0.0.0.0:8081"
			c.UI.Auth.Username, c.UI.Auth.Password = "u", "p"
		}},
		{"ui disabled on public listener", func(c *Config) { c.Health.Addr = ":8080" }},
		{"ui disabled with half an auth", func(c *Config) { c.UI.Auth.Username = "admin" }},
		{"listen port 0", func(c *Config) { c.Health.Addr = "127.0.0.1:0" }},
		{"rates", func(c *Config) { c.RateLimit.Tasks = map[string]string{"email:send": "10-s", "x": "1000-H"} }},
		{"level case", func(c *Config) { c.Log.Level = "DEBUG" }},
		{"max retries disabled and default", func(c *Config) { c.Redis.MaxRetries = 0 }},
		{"url with db and options", func(c *Config) { c.Redis.URL = "redis://127.0.0.1:6379/15?dial_timeout=1s&client_name=w" }},
		{"url ipv6", func(c *Config) { c.Redis.URL = "redis://[::1]:6379" }},
		{"url password and same REDIS_PASSWORD", func(c *Config) { c.Redis.URL = "redis://:pw@127.0.0.1:6379"; c.Redis.Password = "pw" }},
		{"url without password and REDIS_PASSWORD", func(c *Config) { c.Redis.URL = "redis://127.0.0.1:6379/0"; c.Redis.Password = "pw" }},
		{"every bound at its edges", func(c *Config) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultConfig()
			tt.mutate(&c)
			require.NoError(t, c.Validate())
		})
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.Redis.Port = 0
	c.Worker.Concurrency = 0
	c.Worker.Queues = map[string]int{"low": 0, "high": -1}
	c.Log.Format = "xml"
	err := c.Validate()
	require.Equal(t, []config.Problem{
		{Key: "log.format", Message: `"xml" is not a log format (text or json)`},
		{Key: "redis.port", Message: "0 is not a port number (integer 1-65535)"},
		{Key: "worker.concurrency", Message: "0 is not a concurrency (integer 1-10000)"},
		{Key: "worker.queues.high", Message: "-1 is not " + weightBound.form()},
		{Key: "worker.queues.low", Message: "0 is not " + weightBound.form()},
	}, problemsOf(t, err))
	require.Equal(t, 6, strings.Count(err.Error(), "\n")+1, "a header line and one line per problem")
}
