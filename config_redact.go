package taskhost

import (
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/taskhost/taskhost/internal/config"
)

// Redacted returns a deep copy of c in which every set secret reads "***":
// redis.password, redis.sentinel_password, the password in redis.url,
// ui.auth.password, ui.auth.token, every schedule's payload, and any plugin key whose name contains
// "secret", "password", "token" or "key". An empty secret stays empty, so
// that "not set" remains visible.
func (c Config) Redacted() Config {
	out := c
	out.Redis = c.Redis.redacted()
	out.Worker.Queues = maps.Clone(c.Worker.Queues)
	out.RateLimit.Limits = maps.Clone(c.RateLimit.Limits)
	out.RateLimit.Tasks = maps.Clone(c.RateLimit.Tasks)
	out.UI.Auth = c.UI.Auth.redacted()
	out.Schedules = redactedSchedules(c.Schedules)
	if c.Plugins != nil {
		out.Plugins = make(map[string]map[string]any, len(c.Plugins))
		for id, sec := range c.Plugins {
			var m map[string]any
			if sec != nil {
				m = config.RedactAny(map[string]any(sec)).(map[string]any)
			}
			out.Plugins[id] = m
		}
	}
	return out
}

func (r RedisConfig) redacted() RedisConfig {
	r.URL = config.RedactURL(r.URL)
	r.Password = config.RedactString(r.Password)
	r.SentinelPassword = config.RedactString(r.SentinelPassword)
	r.SentinelAddrs = slices.Clone(r.SentinelAddrs)
	r.Addrs = slices.Clone(r.Addrs)
	return r
}

func (a UIAuthConfig) redacted() UIAuthConfig {
	a.Password = config.RedactString(a.Password)
	a.Token = config.RedactString(a.Token)
	return a
}

// LogValue makes slog log c redacted, as nested groups keyed like the file.
func (c Config) LogValue() slog.Value { return groupOf(reflect.ValueOf(c.Redacted())) }

// LogValue makes slog log r redacted.
func (r RedisConfig) LogValue() slog.Value { return groupOf(reflect.ValueOf(r.redacted())) }

// LogValue makes slog log a redacted.
func (a UIAuthConfig) LogValue() slog.Value { return groupOf(reflect.ValueOf(a.redacted())) }

func groupOf(v reflect.Value) slog.Value {
	t := v.Type()
	attrs := make([]slog.Attr, 0, t.NumField())
	for i := range t.NumField() {
		name, ok := config.FieldKey(t.Field(i))
		if !ok {
			continue
		}
		fv := v.Field(i)
		switch {
		case config.IsSection(fv.Type()):
			attrs = append(attrs, slog.Attr{Key: name, Value: groupOf(fv)})
		case fv.Type() == reflect.TypeFor[time.Duration]():
			attrs = append(attrs, slog.String(name, time.Duration(fv.Int()).String()))
		default:
			attrs = append(attrs, slog.Any(name, fv.Interface()))
		}
	}
	return slog.GroupValue(attrs...)
}

// The plain types print like their originals, without these methods.
type (
	plainConfig Config
	plainRedis  RedisConfig
	plainUIAuth UIAuthConfig
)

// String prints c redacted, so that %v and %+v never show a secret.
func (c Config) String() string { return fmt.Sprintf("%+v", plainConfig(c.Redacted())) }

// GoString prints c redacted for %#v.
func (c Config) GoString() string { return fmt.Sprintf("%#v", plainConfig(c.Redacted())) }

// String prints r redacted.
func (r RedisConfig) String() string { return fmt.Sprintf("%+v", plainRedis(r.redacted())) }

// GoString prints r redacted for %#v.
func (r RedisConfig) GoString() string { return fmt.Sprintf("%#v", plainRedis(r.redacted())) }

// String prints a redacted.
func (a UIAuthConfig) String() string { return fmt.Sprintf("%+v", plainUIAuth(a.redacted())) }

// GoString prints a redacted for %#v.
func (a UIAuthConfig) GoString() string { return fmt.Sprintf("%#v", plainUIAuth(a.redacted())) }
