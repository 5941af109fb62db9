package taskhost

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/taskhost/taskhost/internal/config"
)

// secretConfig has a distinct secret in every place one can be.
func secretConfig() Config {
	c := DefaultConfig()
	c.Redis.URL = "redis://app:urlpass-1@redis.internal:6379/0"
	c.Redis.Password = "redispass-2"
	c.Redis.SentinelPassword = "sentinelpass-3"
	c.UI.Auth = UIAuthConfig{Username: "admin", Password: "uipass-4", Token: "uitoken-5"}
	c.Plugins = map[string]map[string]any{
		"webhook": {"signing_secret": "whsec-6", "timeout": "10s", "headers": map[string]any{"X-Api-Key": "apikey-7"}},
		"canary":  {"every": "@every 30s", "token": ""},
	}
	return c
}

var secrets = []string{"urlpass-1", "redispass-2", "sentinelpass-3", "uipass-4", "uitoken-5", "whsec-6", "apikey-7"}

func requireNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range secrets {
		require.NotContains(t, s, secret, what)
	}
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	c := secretConfig()
	r := c.Redacted()
	require.Equal(t, "redis://app:***@redis.internal:6379/0", r.Redis.URL)
	require.Equal(t, "***", r.Redis.Password)
	require.Equal(t, "***", r.Redis.SentinelPassword)
	require.Equal(t, UIAuthConfig{Username: "admin", Password: "***", Token: "***"}, r.UI.Auth)
	require.Equal(t, "***", r.Plugins["webhook"]["signing_secret"])
	require.Equal(t, "10s", r.Plugins["webhook"]["timeout"])
	require.Equal(t, map[string]any{"X-Api-Key": "***"}, r.Plugins["webhook"]["headers"])
	require.Equal(t, "", r.Plugins["canary"]["token"], "an unset secret stays visibly unset")

	// A deep copy: the original keeps its secrets and shares no map.
	require.Equal(t, secretConfig(), c)
	r.Worker.Queues["x"] = 1
	r.Plugins["webhook"]["timeout"] = "1s"
	require.Equal(t, secretConfig(), c)
}

func TestRedactedPrinted(t *testing.T) {
	t.Parallel()
	c := secretConfig()

	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("config", "config", c, "redis", c.Redis, "auth", c.UI.Auth)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("config", "config", c, "redis", c.Redis)

	for what, s := range map[string]string{
		"%v LogValue":  fmt.Sprintf("%v", c.LogValue()),
		"%v":           fmt.Sprintf("%v", c),
		"%+v":          fmt.Sprintf("%+v", c),
		"%#v":          fmt.Sprintf("%#v", c),
		"%s Redacted":  fmt.Sprint(c.Redacted()),
		"%+v redis":    fmt.Sprintf("%+v", c.Redis),
		"%#v redis":    fmt.Sprintf("%#v", c.Redis),
		"%v auth":      fmt.Sprintf("%v", c.UI.Auth),
		"slog text":    text.String(),
		"slog json":    js.String(),
		"redacted url": config.RedactURL(c.Redis.URL),
	} {
		requireNoSecret(t, what, s)
		if what != "redacted url" {
			require.Contains(t, s, "***", what)
		}
	}
	require.Contains(t, text.String(), "config.redis.dial_timeout=500ms")
	require.Contains(t, js.String(), `"url":"redis://app:***@redis.internal:6379/0"`)
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                                 "",
		"redis://127.0.0.1:6379":           "redis://127.0.0.1:6379",
		"redis://user@host:1/2":            "redis://user@host:1/2",
		"redis://:pw@host:1":               "redis://:***@host:1",
		"rediss://u:p%40ss@host:1/0":       "rediss://u:***@host:1/0",
		"redis://host:1?password=x&db=2":   "redis://host:1?db=2&password=***",
		"redis://u:pa%zzss@127.0.0.1:6379": "***",
		"not a url but has : in it %zz":    "***",
	} {
		require.Equal(t, want, config.RedactURL(in), in)
	}
}

func TestErrorsNeverEchoSecrets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts LoadOptions
	}{
		{"unparseable url", LoadOptions{Environ: []string{"REDIS_URL=redis://u:urlpass-1%zz@h:6379"}}},
		{"bad scheme", LoadOptions{Environ: []string{"REDIS_URL=http://u:urlpass-1@h:6379"}}},
		{"bad url option", LoadOptions{Environ: []string{"REDIS_URL=redis://u:urlpass-1@h:6379/0?dial_timeout=urlpass-1"}}},
		{"bad url path", LoadOptions{Environ: []string{"REDIS_URL=redis://u:urlpass-1@h:6379/urlpass-1"}}},
		{"password as list", LoadOptions{Environ: noEnv, Flags: map[string]any{"redis.password": []any{"redispass-2"}}}},
		{"ui token as map", LoadOptions{Environ: noEnv, Flags: map[string]any{"ui.auth.token": map[string]any{"a": "uitoken-5"}}}},
		{"ui username without password", LoadOptions{Environ: []string{"UI_ENABLED=true", "UI_AUTH_PASSWORD=uipass-4"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadConfig(tt.opts)
			require.ErrorIs(t, err, ErrInvalidConfig)
			requireNoSecret(t, tt.name, err.Error())
			require.True(t, strings.Contains(err.Error(), "redis.") || strings.Contains(err.Error(), "ui."), err.Error())
		})
	}
}
