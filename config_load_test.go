package taskhost

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskhost/taskhost/internal/config"
	"github.com/taskhost/taskhost/plugins"
)

// testBundle is what setup gives a test: a directory for config files.
type testBundle struct {
	dir string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	return &testBundle{dir: t.TempDir()}
}

// file writes a config file and returns its path.
func (b *testBundle) file(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(b.dir, "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

// noEnv is an empty environment, so tests never read the real one.
var noEnv = []string{}

// problemsOf returns the problems of a config error, failing if err is not one.
func problemsOf(t *testing.T, err error) []config.Problem {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, ErrInvalidConfig)
	var ce *config.Error
	require.ErrorAs(t, err, &ce)
	return ce.Problems
}

// requireProblem asserts that err holds a problem at key whose message
// contains each of parts.
func requireProblem(t *testing.T, err error, key string, parts ...string) {
	t.Helper()
	for _, p := range problemsOf(t, err) {
		if p.Key != key {
			continue
		}
		for _, part := range parts {
			require.Contains(t, p.Message, part, "problem at %s", key)
		}
		return
	}
	require.Failf(t, "no problem at key", "key %q not in %v", key, err)
}

func TestLoadPrecedence(t *testing.T) {
	t.Parallel()
	b := setup(t)
	path := b.file(t, `
redis:
  host: file-host
  port: 7001
  db: 2
worker:
  concurrency: 3
`)
	cfg, err := LoadConfig(LoadOptions{
		Path:    path,
		Environ: []string{"REDIS_PORT=7002", "REDIS_DB=4", "PATH=/usr/bin", "HOME=/root"},
		Flags:   map[string]any{"redis.db": "5"},
	})
	require.NoError(t, err)
	require.Equal(t, DefaultConfig().Redis.DialTimeout, cfg.Redis.DialTimeout, "default layer")
	require.Equal(t, "file-host", cfg.Redis.Host, "file over default")
	require.Equal(t, 3, cfg.Worker.Concurrency, "file over default")
	require.Equal(t, 7002, cfg.Redis.Port, "env over file")
	require.Equal(t, 5, cfg.Redis.DB, "flags over env over file")
}

func TestLoadDevOverlay(t *testing.T) {
	t.Parallel()
	b := setup(t)

	cfg, err := LoadConfig(LoadOptions{Dev: true, Environ: noEnv})
	require.NoError(t, err)
	require.Equal(t, ModeEmbedded, cfg.Redis.Mode)
	require.True(t, cfg.UI.Enabled)
	// This test binary compiles in webhook (worker_test.go) but not
	// canary: -dev enables only what it can run.
	_, hasCanary := plugins.Lookup("canary")
	require.False(t, hasCanary)
	require.Equal(t, map[string]map[string]any{
		"webhook": {"allow_hosts": []any{"127.0.0.0/8", "::1"}},
	}, cfg.Plugins)
	require.NoError(t, cfg.Validate(), "a -dev config is valid in any binary")

	// The file overrides the overlay and adds to its plugin sections.
	path := b.file(t, `
redis: {mode: standalone}
plugins:
  webhook: {timeout: 5s}
`)
	cfg, err = LoadConfig(LoadOptions{Dev: true, Path: path, Environ: noEnv})
	require.NoError(t, err)
	require.Equal(t, ModeStandalone, cfg.Redis.Mode)
	require.Equal(t, map[string]any{"allow_hosts": []any{"127.0.0.0/8", "::1"}, "timeout": "5s"}, cfg.Plugins["webhook"])
	require.NotContains(t, cfg.Plugins, "canary")

	// Without -dev, nothing is enabled.
	cfg, err = LoadConfig(LoadOptions{Environ: noEnv})
	require.NoError(t, err)
	require.Equal(t, DefaultConfig(), cfg)
}

func TestLoadFileMissing(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(setup(t).dir, "nope.yaml")

	cfg, err := LoadConfig(LoadOptions{Path: missing, Environ: noEnv})
	require.NoError(t, err, "a missing default file is fine")
	require.Equal(t, DefaultConfig(), cfg)

	_, err = LoadConfig(LoadOptions{Path: missing, PathExplicit: true, Environ: noEnv})
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.Contains(t, err.Error(), missing)

	_, err = LoadConfig(LoadOptions{PathExplicit: true, Environ: noEnv})
	require.ErrorIs(t, err, ErrInvalidConfig)
}

func TestLoadFileSyntaxError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	path := b.file(t, "redis: [unclosed\n")
	_, err := LoadConfig(LoadOptions{Path: path, Environ: noEnv})
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.Contains(t, err.Error(), path)
}

func TestLoadUnknownKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	path := b.file(t, `
redis:
  hots: example.com
  tls: {enabld: true}
wroker: {}
`)
	_, err := LoadConfig(LoadOptions{Path: path, Environ: noEnv, Flags: map[string]any{"health.adr": ":1"}})
	ps := problemsOf(t, err)
	require.Equal(t, []config.Problem{
		{Key: "redis.hots", Message: "unknown key (did you mean redis.host?)"},
		{Key: "redis.tls.enabld", Message: "unknown key (did you mean redis.tls.enabled?)"},
		{Key: "health.adr", Message: "unknown key (did you mean health.addr?) (from the command line)"},
		{Key: "wroker", Message: "unknown key (did you mean worker?)"},
	}, ps)
	require.Contains(t, err.Error(), "redis.hots: unknown key")
}

func TestLoadBadValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		env        []string
		key        string
		msg        string
	}{
		{"port not numeric in file", "redis: {port: abc}", nil, "redis.port", `"abc" is not a port number (integer 1-65535)`},
		{"port not numeric in env", "", []string{"REDIS_PORT=abc"}, "redis.port", `"abc" is not a port number (integer 1-65535) (from REDIS_PORT)`},
		{"port fraction", "redis: {port: 6379.5}", nil, "redis.port", `6379.5 is not a port number (integer 1-65535)`},
		{"port bool", "redis: {port: true}", nil, "redis.port", `true is not a port number (integer 1-65535)`},
		{"duration without unit", "redis: {dial_timeout: 5}", nil, "redis.dial_timeout", `5 is not a duration with a unit, from 10ms to 1m`},
		{"duration garbage", "", []string{"REDIS_DIAL_TIMEOUT=soon"}, "redis.dial_timeout", `"soon" is not a duration with a unit, from 10ms to 1m`},
		{"bool garbage", "", []string{"UI_ENABLED=maybe"}, "ui.enabled", `"maybe" is not a boolean (true or false)`},
		{"float garbage", "", []string{"OUTBOX_DRAIN_RATE=fast"}, "outbox.drain_rate", `"fast" is not a rate in tasks per second (number > 0 and <= 1000000)`},
		{"section is scalar", "redis: 5", nil, "redis", `5 is not a section of keys`},
		{"list is a map", "redis: {sentinel_addrs: {a: 1}}", nil, "redis.sentinel_addrs", `a map is not a list of host:port addresses`},
		{"weight not numeric", "worker: {queues: {low: lots}}", nil, "worker.queues.low", `"lots" is not a queue weight (integer 1-1000; asynq v0.26.0 silently ignores`},
		{"env map syntax", "", []string{"WORKER_QUEUES=critical:6"}, "worker.queues", `"critical:6" is not a map of queue name to weight (name=weight,name=weight in the environment) (from WORKER_QUEUES)`},
		{"plugin section scalar", "plugins: {webhook: 5}", nil, "plugins.webhook", `5 is not a plugin section`},
		{"password never echoed", "redis: {password: [hunter2]}", nil, "redis.password", `the value is not a string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			env := tt.env
			if env == nil {
				env = noEnv
			}
			_, err := LoadConfig(LoadOptions{Path: b.file(t, tt.yaml), Environ: env})
			ps := problemsOf(t, err)
			require.Len(t, ps, 1, "one problem, not a second one from validation: %v", err)
			require.Equal(t, tt.key, ps[0].Key)
			require.Contains(t, ps[0].Message, tt.msg)
			require.NotContains(t, err.Error(), "hunter2")
		})
	}
}

func TestLoadEmptyEnvValue(t *testing.T) {
	t.Parallel()
	_, err := LoadConfig(LoadOptions{Environ: []string{"REDIS_PORT=", "WORKER_CONCURRENCY=", "UI_ENABLED=", "REDIS_DIAL_TIMEOUT="}})
	ps := problemsOf(t, err)
	require.Equal(t, []config.Problem{
		{Key: "redis.port", Message: "REDIS_PORT is set but empty (expected a port number (integer 1-65535))"},
		{Key: "redis.dial_timeout", Message: "REDIS_DIAL_TIMEOUT is set but empty (expected a duration with a unit, from 10ms to 1m)"},
		{Key: "worker.concurrency", Message: "WORKER_CONCURRENCY is set but empty (expected a concurrency (integer 1-10000))"},
		{Key: "ui.enabled", Message: "UI_ENABLED is set but empty (expected a boolean (true or false))"},
	}, ps)

	// An empty string key is just empty.
	cfg, err := LoadConfig(LoadOptions{Environ: []string{"REDIS_USERNAME=", "OUTBOX_PATH="}})
	require.NoError(t, err)
	require.Empty(t, cfg.Redis.Username)
}

func TestLoadSeedEnvNames(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(LoadOptions{Environ: []string{
		"REDIS_URL=redis://cache.internal:6390/3",
		"REDIS_HOST=redis.internal",
		"REDIS_PORT=6390",
		"REDIS_USERNAME=app",
		"REDIS_PASSWORD=s3cret",
		"REDIS_DB=3",
	}})
	require.NoError(t, err)
	r := cfg.Redis
	require.Equal(t, "redis://cache.internal:6390/3", r.URL)
	require.Equal(t, "redis.internal", r.Host)
	require.Equal(t, 6390, r.Port)
	require.Equal(t, "app", r.Username)
	require.Equal(t, "s3cret", r.Password)
	require.Equal(t, 3, r.DB)
}

func TestLoadEnvEveryKey(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(LoadOptions{Environ: []string{
		"REDIS_MODE=sentinel",
		"REDIS_MASTER_NAME=mymaster",
		"REDIS_SENTINEL_ADDRS=10.0.0.1:26379, 10.0.0.2:26379,",
		"REDIS_DIAL_TIMEOUT=250ms",
		"REDIS_TLS_INSECURE_SKIP_VERIFY=true",
		"REDIS_MAX_RETRIES=-1",
		"WORKER_CONCURRENCY=4",
		"WORKER_QUEUES=critical=6, default=3",
		"RATELIMIT_TASKS=email:send=10-S,webhook:deliver=50-S",
		"RATELIMIT_LIMITS=",
		"HEALTH_ADDR=0.0.0.0:9090",
		"OUTBOX_DRAIN_RATE=12.5",
		"OUTBOX_MAX_BYTES=4096",
		"WORKER_MAX_PAYLOAD_BYTES=2048",
		"LOG_LEVEL=debug",
		"PLUGINS_WEBHOOK_SIGNING_SECRET=whsec",
		"PLUGINS_WEBHOOK_ALLOW_HOSTS=127.0.0.0/8,::1",
		"PLUGINS_=x", "PLUGINS_WEBHOOK=x", "plugins_webhook_x=y", // not plugin keys
		"REDIS_HOTS=typo", // not a key: ignored like any unrelated variable
	}})
	require.NoError(t, err)
	require.Equal(t, ModeSentinel, cfg.Redis.Mode)
	require.Equal(t, "mymaster", cfg.Redis.MasterName)
	require.Equal(t, []string{"10.0.0.1:26379", "10.0.0.2:26379"}, cfg.Redis.SentinelAddrs)
	require.Equal(t, 250*time.Millisecond, cfg.Redis.DialTimeout)
	require.True(t, cfg.Redis.TLS.InsecureSkipVerify)
	require.Equal(t, 4, cfg.Worker.Concurrency)
	require.Equal(t, map[string]int{"critical": 6, "default": 3}, cfg.Worker.Queues, "env replaces the default map")
	require.Equal(t, map[string]string{"email:send": "10-S", "webhook:deliver": "50-S"}, cfg.RateLimit.Tasks)
	require.Empty(t, cfg.RateLimit.Limits)
	require.Equal(t, "0.0.0.0:9090", cfg.Health.Addr)
	require.Equal(t, 12.5, cfg.Outbox.DrainRate)
	require.Equal(t, int64(4096), cfg.Outbox.MaxBytes)
	require.Equal(t, 2048, cfg.Worker.MaxPayloadBytes)
	require.Equal(t, "debug", cfg.Log.Level)
	require.Equal(t, map[string]map[string]any{
		"webhook": {"signing_secret": "whsec", "allow_hosts": "127.0.0.0/8,::1"},
	}, cfg.Plugins)
}

func TestEnvNames(t *testing.T) {
	t.Parallel()
	for name, path := range map[string]string{
		"REDIS_DIAL_TIMEOUT":          "redis.dial_timeout",
		"WORKER_CONCURRENCY":          "worker.concurrency",
		"HEALTH_ADDR":                 "health.addr",
		"REDIS_TLS_CA_FILE":           "redis.tls.ca_file",
		"REDIS_EMBEDDED_ADDR":         "redis.embedded.addr",
		"CACHE_MEMORY_MAX_ENTRIES":    "cache.memory.max_entries",
		"UI_AUTH_TOKEN":               "ui.auth.token",
		"PLUGINS_CANARY_STALE_AFTER":  "plugins.canary.stale_after",
		"PLUGINS_WEBHOOK_ALLOW_HOSTS": "plugins.webhook.allow_hosts",
	} {
		got, ok := envPath(name)
		require.True(t, ok, name)
		require.Equal(t, path, got, name)
	}
	for _, name := range []string{"PATH", "HOME", "REDIS", "REDIS_TLS", "PLUGINS", "PLUGINS_X_", "PLUGINS__X", "redis_port"} {
		_, ok := envPath(name)
		require.False(t, ok, name)
	}
	// Every leaf but plugins has its own name (buildSchema panics on a clash).
	require.Len(t, configSchema.byEnv, len(configSchema.leaves)-1)
}

func TestLoadMapsReplaceWhole(t *testing.T) {
	t.Parallel()
	b := setup(t)
	path := b.file(t, `
worker:
  queues: {critical: 6, low: 1}
ratelimit:
  tasks:
    "email:send": 10-S
    report.build: 1-M
`)
	cfg, err := LoadConfig(LoadOptions{Path: path, Environ: noEnv})
	require.NoError(t, err)
	require.Equal(t, map[string]int{"critical": 6, "low": 1}, cfg.Worker.Queues, "no inherited default queue")
	require.Equal(t, map[string]string{"email:send": "10-S", "report.build": "1-M"}, cfg.RateLimit.Tasks)

	// A later layer replaces a map whole, even when it names one entry.
	cfg, err = LoadConfig(LoadOptions{Path: path, Environ: noEnv, Flags: map[string]any{"worker.queues.bulk": 2}})
	require.NoError(t, err)
	require.Equal(t, map[string]int{"bulk": 2}, cfg.Worker.Queues)

	// A flag for one entry keeps its dotted name.
	cfg, err = LoadConfig(LoadOptions{Path: path, Environ: noEnv, Flags: map[string]any{"ratelimit.tasks": "a.b=2-S"}})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"a.b": "2-S"}, cfg.RateLimit.Tasks)
}

func TestLoadTypedFlags(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(LoadOptions{Environ: noEnv, Flags: map[string]any{
		"redis.url":          "redis://127.0.0.1:7000",
		"worker.concurrency": 7,
		"redis.read_timeout": 2 * time.Second,
		"ui.enabled":         true,
	}})
	require.NoError(t, err)
	require.Equal(t, "redis://127.0.0.1:7000", cfg.Redis.URL)
	require.Equal(t, 7, cfg.Worker.Concurrency)
	require.Equal(t, 2*time.Second, cfg.Redis.ReadTimeout)
	require.True(t, cfg.UI.Enabled)
}

func TestLoadNullKeepsDefault(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg, err := LoadConfig(LoadOptions{Path: b.file(t, "redis:\n  port:\nworker:\nplugins:\n  canary:\n"), Environ: noEnv})
	require.NoError(t, err)
	require.Equal(t, 6379, cfg.Redis.Port)
	require.Equal(t, DefaultConfig().Worker, cfg.Worker)
	require.Equal(t, map[string]map[string]any{"canary": {}}, cfg.Plugins, "an empty section enables the plugin")
}

func TestLoadReportsAllProblems(t *testing.T) {
	t.Parallel()
	b := setup(t)
	path := b.file(t, `
redis: {port: abc, pool_size: 0, hots: x}
worker: {concurrency: 0}
log: {level: loud}
`)
	_, err := LoadConfig(LoadOptions{Path: path, Environ: []string{"HEALTH_TIMEOUT="}})
	ps := problemsOf(t, err)
	var keys []string
	for _, p := range ps {
		keys = append(keys, p.Key)
	}
	require.Equal(t, []string{"log.level", "redis.hots", "redis.port", "redis.pool_size", "worker.concurrency", "health.timeout"}, keys)
	require.True(t, strings.HasPrefix(err.Error(), "invalid configuration (6 problems):\n  log.level: "), err.Error())
	require.True(t, errors.Is(err, ErrInvalidConfig))
}

func TestLoadDevRefusesOpenUI(t *testing.T) {
	t.Parallel()
	_, err := LoadConfig(LoadOptions{Dev: true, Environ: []string{"HEALTH_ADDR=0.0.0.0:8080"}})
	requireProblem(t, err, "ui.auth", `required when the UI listens on "0.0.0.0:8080" (health.addr), which is not loopback`)

	cfg, err := LoadConfig(LoadOptions{Dev: true, Environ: []string{"HEALTH_ADDR=0.0.0.0:8080", "UI_AUTH_TOKEN=t"}})
	require.NoError(t, err)
	require.Equal(t, "t", cfg.UI.Auth.Token)
}

func TestLoadKeepsRelatedValidationProblems(t *testing.T) {
	t.Parallel()
	_, err := LoadConfig(LoadOptions{Environ: []string{"UI_ENABLED=true", "HEALTH_ADDR=0.0.0.0:8080", "UI_AUTH_USERNAME=admin"}})
	require.Equal(t, []config.Problem{
		{Key: "ui.auth", Message: `required when the UI listens on "0.0.0.0:8080" (health.addr), which is not loopback: ` +
			`set ui.auth.username and ui.auth.password, or ui.auth.token, or listen on 127.0.0.1`},
		{Key: "ui.auth.password", Message: "required when ui.auth.username is set (basic auth needs both)"},
	}, problemsOf(t, err))
}

// FuzzLoadYAML feeds arbitrary YAML to Load: it must never panic, and every
// error it returns must match ErrInvalid.
func FuzzLoadYAML(f *testing.F) {
	if body, err := os.ReadFile(repoConfig); err == nil {
		f.Add(string(body))
	}
	for _, seed := range []string{
		"redis: {port: abc, hots: x}",
		"worker: {queues: {a: {b: {c: 1}}}}",
		"ratelimit: {tasks: [a], limits: {x: 10-S}}",
		"plugins: {webhook: [1], canary: ~}",
		"redis: {tls: [], sentinel_addrs: {a: 1}}",
		"- 1\n- 2\n",
		"redis:\n  url: redis://u:p@h:1/0\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		path := filepath.Join(t.TempDir(), "config.yaml")
		require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
		_, err := LoadConfig(LoadOptions{Path: path, Environ: noEnv})
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidConfig)
		}
	})
}
