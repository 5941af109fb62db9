package health

import (
	"regexp"
	"strings"
)

// Mask replaces a redacted password.
const Mask = "xxxxx"

var (
	// A scheme:// token up to whitespace or a quote; redactURL takes the
	// userinfo to the token's last '@', so a raw '@' or '/' inside a
	// password is still covered.
	urlToken = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>]*`)
	// key=value pairs whose key names a password, secret or token, as in
	// query strings (?password=, &sentinel_password=) and logfmt.
	secretParam = regexp.MustCompile(`(?i)((?:^|[?&;,\s])[A-Za-z0-9_.\-]*(?:password|passwd|secret|token)=)[^&;,\s"']*`)
)

// Redact masks the passwords in s: the password of every URL's userinfo
// (redis://user:pass@host becomes redis://user:xxxxx@host; a userinfo
// without a colon is kept, as go-redis reads it as a user name) and the value
// of every key=value pair whose key contains "password", "secret" or
// "token". Everything else is returned unchanged.
func Redact(s string) string {
	if strings.Contains(s, "://") {
		s = urlToken.ReplaceAllStringFunc(s, redactURL)
	}
	if strings.Contains(s, "=") {
		s = secretParam.ReplaceAllString(s, "${1}"+Mask)
	}
	return s
}

// redactURL masks the password in one scheme://… token.
func redactURL(tok string) string {
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
	return scheme + userinfo[:colon+1] + Mask + host
}
