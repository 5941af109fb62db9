package taskhost

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// loadYAML loads body as the config file, without the environment.
func loadYAML(t *testing.T, body string) (Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return LoadConfig(LoadOptions{Path: path, PathExplicit: true, Environ: noEnv})
}

func TestSchedulesLoad(t *testing.T) {
	t.Parallel()
	cfg, err := loadYAML(t, `
schedules:
  as_text:
    cron: "*/5 * * * *"
    type: report:send
    payload: '{"to": "ops@example.com"}'
  as_yaml:
    cron: "@every 10s"
    type: report:send
    queue: low
    payload:
      to: ops@example.com
      n: 3
    options: {max_retry: 0, timeout: 1m, unique: 9s, retention: 1h}
  bare:
    cron: "@daily"
    type: report:send
`)
	require.NoError(t, err)
	require.Len(t, cfg.Schedules, 3)
	entries := cfg.scheduleEntries()
	require.Len(t, entries, 3)
	byName := map[string]int{}
	for i, e := range entries {
		byName[e.Name] = i
	}
	text := entries[byName["schedules.as_text"]]
	require.Equal(t, `{"to": "ops@example.com"}`, string(text.Task.Payload()))
	require.Equal(t, "report:send", text.Task.Type())
	yml := entries[byName["schedules.as_yaml"]]
	require.JSONEq(t, `{"to": "ops@example.com", "n": 3}`, string(yml.Task.Payload()))
	require.Len(t, yml.Opts, 5, "queue, max_retry, timeout, unique, retention")
	require.Nil(t, entries[byName["schedules.bare"]].Task.Payload())
	zero := 0
	require.Equal(t, &zero, cfg.Schedules["as_yaml"].Options.MaxRetry)

	red := cfg.Redacted()
	require.Equal(t, "***", red.Schedules["as_text"].Payload)
	require.Equal(t, "***", red.Schedules["as_yaml"].Payload)
	require.Nil(t, red.Schedules["bare"].Payload)
	require.NotContains(t, cfg.String(), "ops@example.com")
}

// Each bad schedules entry is a config error naming its key.
func TestSchedulesRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, entry, key, msg string }{
		{"bad cron", `{cron: "every minute", type: t}`, "schedules.r.cron", "is not five cron fields"},
		{"seconds field", `{cron: "* * * * * *", type: t}`, "schedules.r.cron", "expected exactly 5 fields"},
		{"sub-second every", `{cron: "@every 1500ms", type: t}`, "schedules.r.cron", "whole seconds"},
		{"missing cron", `{type: t}`, "schedules.r.cron", "required"},
		{"missing type", `{cron: "@hourly"}`, "schedules.r.type", "required"},
		{"type with space", `{cron: "@hourly", type: "a b"}`, "schedules.r.type", "is not a task type"},
		{"unknown key", `{cron: "@hourly", type: t, crn: x}`, "schedules.r.crn", "unknown key"},
		{"unknown option", `{cron: "@hourly", type: t, options: {retries: 3}}`, "schedules.r.options.retries", "unknown key"},
		{"payload not JSON", `{cron: "@hourly", type: t, payload: '{"token": "sekret-9"'}`, "schedules.r.payload", "is not valid JSON"},
		{"bad queue", `{cron: "@hourly", type: t, queue: "a{b}"}`, "schedules.r.queue", "is not a queue name"},
		{"negative max_retry", `{cron: "@hourly", type: t, options: {max_retry: -1}}`, "schedules.r.options.max_retry", "is not a retry count"},
		{"timeout without unit", `{cron: "@hourly", type: t, options: {timeout: 10}}`, "schedules.r.options.timeout", "10 is not a duration >= 0"},
		{"negative retention", `{cron: "@hourly", type: t, options: {retention: -1s}}`, "schedules.r.options.retention", "is not a duration >= 0"},
		{"unique too long", `{cron: "@every 1m", type: t, options: {unique: 1m}}`, "schedules.r.options.unique", "shortest gap"},
		{"unique under a second", `{cron: "@every 1m", type: t, options: {unique: 500ms}}`, "schedules.r.options.unique", "less than 1s"},
		{"entry not a section", `"@hourly"`, "schedules.r", `"@hourly" is not a section with cron`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := loadYAML(t, "schedules:\n  r: "+tc.entry+"\n")
			requireProblem(t, err, tc.key, tc.msg)
			require.NotContains(t, err.Error(), "sekret-9", "a payload may hold a secret")
		})
	}
	_, err := loadYAML(t, "schedules:\n  \"bad name\": {cron: \"@hourly\", type: t}\n")
	requireProblem(t, err, "schedules.bad name", "is not a schedule name")
	_, err = loadYAML(t, "schedules: [a, b]\n")
	requireProblem(t, err, "schedules", "is not a map of schedule name")
}

// A schedule whose type no configured plugin handles is a config error at
// provisioning, which CheckConfig runs.
func TestScheduleTypeMustBeHandled(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Health.Addr = "127.0.0.1:0"
	cfg.Schedules = map[string]ScheduleConfig{"r": {Cron: "@hourly", Type: "webhook:send"}}
	cfg.Plugins = map[string]map[string]any{"webhook": {}}
	err := CheckConfig(context.Background(), cfg)
	requireProblem(t, err, "schedules.r.type", `"webhook:send" is not handled by any configured plugin (expected one of: webhook:deliver)`)

	cfg.Plugins = map[string]map[string]any{}
	err = CheckConfig(context.Background(), cfg)
	requireProblem(t, err, "schedules.r.type", "no plugin is configured")

	cfg.Plugins = map[string]map[string]any{"webhook": {}}
	cfg.Schedules["r"] = ScheduleConfig{Cron: "@hourly", Type: "webhook:deliver", Options: ScheduleOptions{Timeout: time.Second}}
	require.NoError(t, CheckConfig(context.Background(), cfg))
}
