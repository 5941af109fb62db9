package config

import (
	"net/url"
	"reflect"
	"strings"
)

// RedactedValue replaces every secret that is shown.
const RedactedValue = "***"

func RedactString(s string) string {
	if s == "" {
		return ""
	}
	return RedactedValue
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
			return RedactedValue
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
			if IsSecretName(name) {
				q[name] = []string{mark}
				changed = true
			}
		}
		u.RawQuery = q.Encode()
	}
	if !changed {
		return raw
	}
	return strings.ReplaceAll(u.String(), mark, RedactedValue)
}

// IsSecretName reports whether a plugin key holds a secret.
func IsSecretName(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"secret", "password", "token", "key"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// IsSecretKey reports whether the value at a full key must never be shown.
func IsSecretKey(key string) bool {
	switch key {
	case "redis.url", "redis.password", "redis.sentinel_password", "ui.auth.password", "ui.auth.token":
		return true
	}
	if strings.HasPrefix(key, PluginsKey+".") {
		return IsSecretName(key[strings.LastIndex(key, ".")+1:])
	}
	// schedules.<name>.payload, and anything below it.
	if rest, ok := strings.CutPrefix(key, "schedules."); ok {
		_, field, _ := strings.Cut(rest, ".")
		return field == "payload" || strings.HasPrefix(field, "payload.")
	}
	return false
}

// RedactAny deep-copies a plugin value, hiding every secret-named key's value.
func RedactAny(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			if IsSecretName(k) && !isEmpty(e) {
				m[k] = RedactedValue
				continue
			}
			m[k] = RedactAny(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = RedactAny(e)
		}
		return s
	}
	return CopyAny(v)
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
