package ui

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
)

// Auth is the dashboard's credentials: basic auth (Username and Password),
// a token, or both. A token is accepted as "Authorization: Bearer <token>",
// or as the password of basic auth with any user name, so that a browser
// can log in with it. String, GoString, LogValue and MarshalJSON redact
// the secrets.
type Auth struct {
	Username string
	Password string
	Token    string
}

const redacted = "***"

func (a Auth) empty() bool { return a.Username == "" && a.Password == "" && a.Token == "" }

// String shows the user name and whether each secret is set, never a secret.
func (a Auth) String() string {
	return fmt.Sprintf("{Username:%s Password:%s Token:%s}", a.Username, mask(a.Password), mask(a.Token))
}

// GoString is String, so that %#v redacts too.
func (a Auth) GoString() string { return "ui.Auth" + a.String() }

// LogValue redacts the secrets in slog output.
func (a Auth) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username", a.Username),
		slog.String("password", mask(a.Password)), slog.String("token", mask(a.Token)))
}

// MarshalJSON redacts the secrets in JSON.
func (a Auth) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"username": a.Username, "password": mask(a.Password), "token": mask(a.Token)})
}

func mask(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}

// realm names the protection space in WWW-Authenticate.
const realm = `realm="taskhost dashboard"`

// authenticate lets through requests that present the credentials and
// answers the others 401 with a challenge. Secrets are compared as SHA-256
// digests with crypto/subtle, so neither their content nor their length
// shows in the time taken.
func authenticate(a Auth, log *slog.Logger, next http.Handler) http.Handler {
	var (
		basic = a.Username != "" && a.Password != ""
		user  = sha256.Sum256([]byte(a.Username))
		pass  = sha256.Sum256([]byte(a.Password))
		token = sha256.Sum256([]byte(a.Token))
	)
	hasToken := a.Token != ""
	allowed := func(r *http.Request) bool {
		if u, p, ok := r.BasicAuth(); ok {
			okBasic := basic && equal(u, user)&equal(p, pass) == 1
			okToken := hasToken && equal(p, token) == 1
			return okBasic || okToken
		}
		scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		return hasToken && strings.EqualFold(scheme, "Bearer") && equal(strings.TrimSpace(cred), token) == 1
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allowed(r) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Add("WWW-Authenticate", "Basic "+realm+`, charset="UTF-8"`)
		if hasToken {
			w.Header().Add("WWW-Authenticate", "Bearer "+realm)
		}
		log.Debug("refused a dashboard request without valid credentials",
			"remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
		http.Error(w, "authentication required", http.StatusUnauthorized)
	})
}

// equal compares s with a digest in constant time; 1 when they match.
func equal(s string, want [sha256.Size]byte) int {
	got := sha256.Sum256([]byte(s))
	return subtle.ConstantTimeCompare(got[:], want[:])
}

// loopbackHostOnly guards an open dashboard on a loopback listener: it
// answers only requests addressed to a loopback name or IP. A web page that
// rebinds its own domain to 127.0.0.1 sends its domain as Host and is
// refused, so it cannot read the queues or, with ui.read_only off, act on
// them.
func loopbackHostOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !loopbackHost(strings.Trim(host, "[]")) {
			http.Error(w, "the dashboard without ui.auth answers only requests to localhost or a loopback IP", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// IsLoopback reports whether a listen address (host:port) binds loopback
// only: localhost or a loopback IP. ":8080" and "0.0.0.0:8080" are not.
// It is the rule config validation applies to ui.addr and health.addr.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && loopbackHost(host)
}

func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
