package plugins_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/plugins"
)

type sampleConfig struct {
	Timeout time.Duration `koanf:"timeout"`
	Count   int           `koanf:"count"`
	Hosts   []string      `koanf:"hosts"`
	Nested  struct {
		Name string `koanf:"name"`
	} `koanf:"nested"`
}

func decode(t *testing.T, section map[string]any) (sampleConfig, error) {
	t.Helper()
	c := sampleConfig{Timeout: 5 * time.Second, Count: 1}
	err := plugins.DecodeConfig("sample", section, &c)
	return c, err
}

func TestDecodeConfigValues(t *testing.T) {
	t.Parallel()
	c, err := decode(t, map[string]any{
		"timeout": "1m30s",
		"count":   3,
		"hosts":   []any{"a", "b"},
		"nested":  map[string]any{"name": "n"},
	})
	require.NoError(t, err)
	require.Equal(t, 90*time.Second, c.Timeout)
	require.Equal(t, 3, c.Count)
	require.Equal(t, []string{"a", "b"}, c.Hosts)
	require.Equal(t, "n", c.Nested.Name)
}

func TestDecodeConfigKeepsDefaults(t *testing.T) {
	t.Parallel()
	for _, section := range []map[string]any{nil, {}} {
		c, err := decode(t, section)
		require.NoError(t, err)
		require.Equal(t, 5*time.Second, c.Timeout)
		require.Equal(t, 1, c.Count)
	}
}

func TestDecodeConfigFromEnvironmentStrings(t *testing.T) {
	t.Parallel()
	// PLUGINS_SAMPLE_HOSTS=a,b and PLUGINS_SAMPLE_COUNT=7 arrive as strings.
	c, err := decode(t, map[string]any{"hosts": "a,b", "count": "7", "timeout": "2s"})
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, c.Hosts)
	require.Equal(t, 7, c.Count)
	require.Equal(t, 2*time.Second, c.Timeout)
}

func TestDecodeConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		section map[string]any
		want    string
	}{
		{"unknown key", map[string]any{"bogus": 1}, "plugins.sample.bogus: unknown key"},
		{"unknown nested key", map[string]any{"nested": map[string]any{"zz": 1}}, "plugins.sample.nested.zz: unknown key"},
		{"bad duration", map[string]any{"timeout": "soon"}, `plugins.sample.timeout: "soon" is not a duration`},
		{"number as duration", map[string]any{"timeout": 10}, "plugins.sample.timeout: 10 is not a duration"},
		{"not an int", map[string]any{"count": "many"}, `plugins.sample.count: "many" is not an integer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := decode(t, tt.section)
			require.ErrorContains(t, err, tt.want)
			require.ErrorIs(t, err, plugins.ErrInvalidConfig)
		})
	}
}

func TestDecodeConfigReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := decode(t, map[string]any{"bogus": 1, "other": 2, "timeout": "x"})
	require.ErrorContains(t, err, "3 problems")
	for _, key := range []string{"plugins.sample.bogus", "plugins.sample.other", "plugins.sample.timeout"} {
		require.ErrorContains(t, err, key)
	}
}

func TestConfigErrorIsInvalidConfig(t *testing.T) {
	t.Parallel()
	inner := errors.New("no")
	err := error(&plugins.ConfigError{Key: "plugins.x.rate", Err: inner})
	require.EqualError(t, err, "plugins.x.rate: no")
	require.ErrorIs(t, err, plugins.ErrInvalidConfig)
	require.ErrorIs(t, err, inner)
}
