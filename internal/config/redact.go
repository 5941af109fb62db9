package config

import (
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"
)

// redactedValue replaces every secret that Redacted, String and LogValue show.
const redactedValue = "***"

// Redacted returns a deep copy of c in which every set secret reads "***":
// redis.password, redis.sentinel_password, the password in redis.url,
// ui.auth.password, ui.auth.token, and any plugin key whose name contains
// "secret", "password", "token" or "key". An empty secret stays empty, so
// that "not set" remains visible.
func (c Config) Redacted() Config {
	out := c
	out.Redis = c.Redis.redacted()
	out.Worker.Queues = maps.Clone(c.Worker.Queues)
	out.RateLimit.Limits = maps.Clone(c.RateLimit.Limits)
	out.RateLimit.Tasks = maps.Clone(c.RateLimit.Tasks)
	out.UI.Auth = c.UI.Auth.redacted()
	if c.Plugins != nil {
		out.Plugins = make(map[string]map[string]any, len(c.Plugins))
		for id, sec := range c.Plugins {
			var m map[string]any
			if sec != nil {
				m = redactAny(map[string]any(sec)).(map[string]any)
			}
			out.Plugins[id] = m
		}
	}
	return out
}

func (r Redis) redacted() Redis {
	r.URL = RedactURL(r.URL)
	r.Password = redactString(r.Password)
	r.SentinelPassword = redactString(r.SentinelPassword)
	r.SentinelAddrs = slices.Clone(r.SentinelAddrs)
	r.Addrs = slices.Clone(r.Addrs)
	return r
}

func (a UIAuth) redacted() UIAuth {
	a.Password = redactString(a.Password)
	a.Token = redactString(a.Token)
	return a
}

func redactString(s string) string {
	if s == "" {
		return ""
	}
	return redactedValue
}

// RedactURL returns raw with the password in its userinfo, and any query
// parameter named like a secret, replaced by "***". A URL that does not parse
// is replaced whole when it could hold userinfo.
func RedactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		if strings.ContainsAny(raw, "@:") {
			return redactedValue
		}
		return raw
	}
	// url.UserPassword would escape "*", so mark the spot and replace it.
	const mark = "TASKHOSTREDACTED"
	changed := false
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), mark)
			changed = true
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for name := range q {
			if isSecretName(name) {
				q[name] = []string{mark}
				changed = true
			}
		}
		u.RawQuery = q.Encode()
	}
	if !changed {
		return raw
	}
	return strings.ReplaceAll(u.String(), mark, redactedValue)
}

// isSecretName reports whether a plugin key holds a secret.
func isSecretName(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"secret", "password", "token", "key"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// isSecretKey reports whether the value at a full key must never be shown.
func isSecretKey(key string) bool {
	switch key {
	case "redis.url", "redis.password", "redis.sentinel_password", "ui.auth.password", "ui.auth.token":
		return true
	}
	if strings.HasPrefix(key, pluginsKey+".") {
		return isSecretName(key[strings.LastIndex(key, ".")+1:])
	}
	return false
}

// redactAny deep-copies a plugin value, hiding every secret-named key's value.
func redactAny(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			if isSecretName(k) && !isEmpty(e) {
				m[k] = redactedValue
				continue
			}
			m[k] = redactAny(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = redactAny(e)
		}
		return s
	}
	return copyAny(v)
}

func isEmpty(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String, reflect.Map, reflect.Slice:
		return rv.Len() == 0
	}
	return false
}

// LogValue makes slog log c redacted, as nested groups keyed like the file.
func (c Config) LogValue() slog.Value { return groupOf(reflect.ValueOf(c.Redacted())) }

// LogValue makes slog log r redacted.
func (r Redis) LogValue() slog.Value { return groupOf(reflect.ValueOf(r.redacted())) }

// LogValue makes slog log a redacted.
func (a UIAuth) LogValue() slog.Value { return groupOf(reflect.ValueOf(a.redacted())) }

func groupOf(v reflect.Value) slog.Value {
	t := v.Type()
	attrs := make([]slog.Attr, 0, t.NumField())
	for i := range t.NumField() {
		name, ok := fieldKey(t.Field(i))
		if !ok {
			continue
		}
		fv := v.Field(i)
		switch {
		case isSection(fv.Type()):
			attrs = append(attrs, slog.Attr{Key: name, Value: groupOf(fv)})
		case fv.Type() == durationType:
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
	plainRedis  Redis
	plainUIAuth UIAuth
)

// String prints c redacted, so that %v and %+v never show a secret.
func (c Config) String() string { return fmt.Sprintf("%+v", plainConfig(c.Redacted())) }

// GoString prints c redacted for %#v.
func (c Config) GoString() string { return fmt.Sprintf("%#v", plainConfig(c.Redacted())) }

// String prints r redacted.
func (r Redis) String() string { return fmt.Sprintf("%+v", plainRedis(r.redacted())) }

// GoString prints r redacted for %#v.
func (r Redis) GoString() string { return fmt.Sprintf("%#v", plainRedis(r.redacted())) }

// String prints a redacted.
func (a UIAuth) String() string { return fmt.Sprintf("%+v", plainUIAuth(a.redacted())) }

// GoString prints a redacted for %#v.
func (a UIAuth) GoString() string { return fmt.Sprintf("%#v", plainUIAuth(a.redacted())) }
