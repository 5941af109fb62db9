package config

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type sectionInner struct {
	Count int `koanf:"count"`
}

type section struct {
	Timeout    time.Duration     `koanf:"timeout"`
	Rate       string            `koanf:"rate"`
	Secret     string            `koanf:"signing_secret"`
	AllowHosts []string          `koanf:"allow_hosts"`
	Headers    map[string]string `koanf:"headers"`
	Enabled    bool              `koanf:"enabled"`
	Level      slog.Level        `koanf:"level"`
	Prefix     netip.Prefix      `koanf:"prefix"`
	Inner      sectionInner      `koanf:"inner"`
	Untagged   int
}

func TestDecodeSection(t *testing.T) {
	t.Parallel()
	v := section{Timeout: 10 * time.Second, Rate: "50-S"} // defaults
	err := DecodeSection("plugins.webhook", map[string]any{
		"allow_hosts": "127.0.0.0/8, ::1", // from PLUGINS_WEBHOOK_ALLOW_HOSTS
		"headers":     "X-A=1,X-B=2",
		"enabled":     "true",
		"level":       "warn",
		"prefix":      "10.0.0.0/8",
		"inner":       map[string]any{"count": "3"},
		"untagged":    4,
	}, &v)
	require.NoError(t, err)
	require.Equal(t, section{
		Timeout:    10 * time.Second,
		Rate:       "50-S",
		AllowHosts: []string{"127.0.0.0/8", "::1"},
		Headers:    map[string]string{"X-A": "1", "X-B": "2"},
		Enabled:    true,
		Level:      slog.LevelWarn,
		Prefix:     netip.MustParsePrefix("10.0.0.0/8"),
		Inner:      sectionInner{Count: 3},
		Untagged:   4,
	}, v)
}

func TestDecodeSectionProblems(t *testing.T) {
	t.Parallel()
	var v section
	err := DecodeSection("plugins.webhook", map[string]any{
		"timout":         "1s",
		"timeout":        "10",
		"signing_secret": []any{"whsec-6"},
		"inner":          map[string]any{"count": "many", "cuont": 1},
		"allow_hosts":    []any{"a", map[string]any{"b": 1}},
	}, &v)
	require.Equal(t, []Problem{
		{Key: "plugins.webhook.allow_hosts", Message: "item 2, a map, is not a string"},
		{Key: "plugins.webhook.inner.count", Message: `"many" is not an integer`},
		{Key: "plugins.webhook.inner.cuont", Message: "unknown key (did you mean plugins.webhook.inner.count?)"},
		{Key: "plugins.webhook.signing_secret", Message: "the value is not a string"},
		{Key: "plugins.webhook.timeout", Message: `"10" is not a duration with a unit, such as 500ms, 2s or 1m`},
		{Key: "plugins.webhook.timout", Message: "unknown key (did you mean plugins.webhook.timeout?)"},
	}, problemsOf(t, err))
	require.NotContains(t, err.Error(), "whsec-6")

	require.Error(t, DecodeSection("x", nil, v), "not a pointer")
	require.NotErrorIs(t, DecodeSection("x", nil, v), ErrInvalid)
}

func TestStrictHookRefusesSilentZeros(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   any
		out  any
	}{
		{"empty string as int", "", new(int)},
		{"space as int", " ", new(int)},
		{"fraction as int", 1.5, new(int)},
		{"overflow int8", "300", new(int8)},
		{"bool as int", true, new(int)},
		{"bare number as duration", 5, new(time.Duration)},
		{"empty string as duration", "", new(time.Duration)},
		{"yes as bool", "yes", new(bool)},
		{"NaN as float", "NaN", new(float64)},
		{"negative as uint", "-1", new(uint)},
		{"pair without =", "a", new(map[string]int)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Error(t, decodeWith(tt.in, tt.out))
		})
	}
	var d time.Duration
	require.NoError(t, decodeWith(0, &d), "0 needs no unit")
	var n int
	require.NoError(t, decodeWith(" 42 ", &n))
	require.Equal(t, 42, n)
	require.NoError(t, decodeWith(6.0, &n))
	require.Equal(t, 6, n)
	var s string
	require.NoError(t, decodeWith(12345, &s), "password: 12345 in YAML")
	require.Equal(t, "12345", s)
}

// problemsOf returns the problems of a config error, failing if err is not one.
func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, ErrInvalid)
	var ce *Error
	require.ErrorAs(t, err, &ce)
	return ce.Problems
}
