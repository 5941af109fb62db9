package config

import (
	"net/url"
	"reflect"
	"regexp"
	"strings"
)

// RedactedValue replaces every secret that is shown: in a config, in a
// health report, in an error message.
const RedactedValue = "***"

// secretWords make a name a secret's: a config key, a URL query parameter or
// a key=value pair whose name contains one of them holds a secret.
var secretWords = []string{"secret", "password", "passwd", "token", "key"}

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

// IsSecretName reports whether a name (a plugin key, a query parameter)
// holds a secret: it contains one of secretWords, in any case.
func IsSecretName(name string) bool {
	n := strings.ToLower(name)
	for _, s := range secretWords {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

var (
	// A scheme:// token up to whitespace or a quote; redactURLText takes
	// the userinfo to the token's last '@', so a raw '@' or '/' inside a
	// password is still covered.
	urlToken = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>]*`)
	// key=value pairs whose key is a secret's name (IsSecretName), as in
	// query strings (?password=, &sentinel_password=) and logfmt.
	secretParam = regexp.MustCompile(`(?i)((?:^|[?&;,\s])[A-Za-z0-9_.\-]*(?:` +
		strings.Join(secretWords, "|") + `)=)[^&;,\s"']*`)
)

// RedactText masks the secrets in free text, such as an error message or a
// health report line: the password of every URL's userinfo
// (redis://user:pass@host becomes redis://user:***@host; a userinfo without
// a colon is kept, as go-redis reads it as a user name) and the value of
// every key=value pair whose key is a secret's name. Everything else is
// returned unchanged.
func RedactText(s string) string {
	if strings.Contains(s, "://") {
		s = urlToken.ReplaceAllStringFunc(s, redactURLText)
	}
	if strings.Contains(s, "=") {
		s = secretParam.ReplaceAllString(s, "${1}"+RedactedValue)
	}
	return s
}

// redactURLText masks the password in one scheme://… token of free text.
func redactURLText(tok string) string {
	i := strings.Index(tok, "://")
	scheme, rest := tok[:i+3], tok[i+3:]
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return tok
	}
	userinfo, host := rest[:at], rest[at:]
	colon := strings.IndexByte(userinfo, ':')
	if colon < 0 {
		return tok
	}
	return scheme + userinfo[:colon+1] + RedactedValue + host
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
