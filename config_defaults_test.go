package taskhost

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskhost/taskhost/internal/config"
)

// TestURLAloneIsAValidConfig is the promise: a program names the
// Redis URL and nothing else.
func TestURLAloneIsAValidConfig(t *testing.T) {
	t.Parallel()
	c := Config{Redis: RedisConfig{URL: "redis://127.0.0.1:6390/0"}}
	require.NoError(t, c.Validate())
	want := DefaultConfig()
	want.Redis.URL = c.Redis.URL
	require.Equal(t, want, c.WithDefaults())
	require.NoError(t, Config{}.Validate(), "the zero Config is the defaults")
}

// TestZeroMeansDefault: in a Config built in Go every zero is "not set",
// including the settings whose zero is also a valid value.
func TestZeroMeansDefault(t *testing.T) {
	t.Parallel()
	c := Config{UI: UIConfig{Enabled: true}, Worker: WorkerConfig{Concurrency: 3}}.WithDefaults()
	require.True(t, c.UI.ReadOnly, "an enabled dashboard is read-only unless asked otherwise")
	require.True(t, c.Worker.AutoPipeline)
	require.Equal(t, 25, c.Worker.MaxRetry)
	require.Equal(t, -1, c.Redis.MaxRetries, "no retries: an unreachable Redis fails a call in about a second")
	require.Equal(t, 1, c.Redis.DialerRetries)
	require.Equal(t, 3, c.Worker.Concurrency, "a set field is kept")
	require.Equal(t, map[string]int{"default": 1}, c.Worker.Queues)
	require.NotNil(t, c.Plugins)
	require.Equal(t, 500*time.Millisecond, c.Redis.DialTimeout)

	// On a complete config, zeros are taken as they are.
	c.UI.ReadOnly, c.Worker.MaxRetry, c.Redis.MaxRetries = false, 0, 0
	again := c.WithDefaults()
	require.False(t, again.UI.ReadOnly)
	require.Zero(t, again.Worker.MaxRetry)
	require.Zero(t, again.Redis.MaxRetries)
	require.NoError(t, again.Validate())
}

// TestDefaultsAreNotShared: filling a config does not hand it the defaults'
// maps.
func TestDefaultsAreNotShared(t *testing.T) {
	t.Parallel()
	a := Config{}.WithDefaults()
	a.Worker.Queues["extra"] = 2
	a.RateLimit.Limits["x"] = "1-S"
	b := Config{}.WithDefaults()
	require.Equal(t, map[string]int{"default": 1}, b.Worker.Queues)
	require.Empty(t, b.RateLimit.Limits)
}

// TestCompleteConfigsKeepZeros: DefaultConfig and LoadConfig return complete
// configs, so an invalid zero set on them is reported, not replaced.
func TestCompleteConfigsKeepZeros(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.Worker.Concurrency = 0
	requireProblem(t, c.Validate(), "worker.concurrency", "0 is not a concurrency")
	loaded, err := LoadConfig(LoadOptions{Environ: []string{}})
	require.NoError(t, err)
	require.True(t, loaded.complete)
	loaded.Health.Timeout = 0
	requireProblem(t, loaded.Validate(), "health.timeout", "0s is not")
}

// TestLiteralProblemsAllAtOnce: a literal's bad values are all named, each
// with its key and form, after the zeros took their defaults.
func TestLiteralProblemsAllAtOnce(t *testing.T) {
	t.Parallel()
	err := Config{
		Redis:  RedisConfig{URL: "http://127.0.0.1:6379"},
		Log:    LogConfig{Level: "trace"},
		Worker: WorkerConfig{Queues: map[string]int{"a b": 1}},
		Health: HealthConfig{Timeout: -time.Second},
	}.Validate()
	require.ErrorIs(t, err, ErrInvalidConfig)
	var keys []string
	for _, p := range problemsOf(t, err) {
		keys = append(keys, p.Key)
	}
	require.Equal(t, []string{"log.level", "redis.url", "worker.queues.a b", "health.timeout"}, keys)
}

// TestWithDefaultsCoversEveryKey: every leaf of Config is filled, so a key
// added later cannot be forgotten.
func TestWithDefaultsCoversEveryKey(t *testing.T) {
	t.Parallel()
	filled := reflect.ValueOf(Config{}.WithDefaults())
	def := reflect.ValueOf(DefaultConfig())
	for _, l := range configSchema.leaves {
		got, want := leafValue(filled, l.path), leafValue(def, l.path)
		require.Equal(t, want.Interface(), got.Interface(), "%s", l.path)
	}
}

// leafValue walks v along a koanf path.
func leafValue(v reflect.Value, path string) reflect.Value {
	for _, name := range strings.Split(path, ".") {
		t := v.Type()
		for i := range t.NumField() {
			if k, ok := config.FieldKey(t.Field(i)); ok && k == name {
				v = v.Field(i)
				break
			}
		}
	}
	return v
}
