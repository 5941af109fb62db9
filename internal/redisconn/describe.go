package redisconn

import (
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Describe returns a loggable description of the Redis target: the mode and
// its addresses, never a password. A URL's password is shown as "***".
func Describe(cfg Config) string {
	var b strings.Builder
	switch cfg.Mode {
	case ModeStandalone, "":
		b.WriteString("standalone ")
		if cfg.URL != "" {
			b.WriteString(redactURL(cfg.URL))
		} else {
			port := cfg.Port
			if port == 0 {
				port = 6379
			}
			b.WriteString(net.JoinHostPort(cfg.Host, strconv.Itoa(port)))
			b.WriteString(" db=")
			b.WriteString(strconv.Itoa(cfg.DB))
		}
	case ModeEmbedded:
		b.WriteString("embedded ")
		b.WriteString(cfg.Embedded.Addr)
		return b.String()
	case ModeSentinel:
		b.WriteString("sentinel master=")
		b.WriteString(cfg.MasterName)
		b.WriteString(" sentinels=")
		b.WriteString(strings.Join(cfg.SentinelAddrs, ","))
		b.WriteString(" db=")
		b.WriteString(strconv.Itoa(cfg.DB))
	case ModeCluster:
		b.WriteString("cluster addrs=")
		b.WriteString(strings.Join(cfg.Addrs, ","))
	default:
		b.WriteString("unknown mode ")
		b.WriteString(strconv.Quote(cfg.Mode))
		return b.String()
	}
	if tlsWanted(cfg) {
		b.WriteString(" tls")
		if cfg.TLS.InsecureSkipVerify {
			b.WriteString(" insecure-skip-verify")
		}
	}
	return b.String()
}

// redactURL shows a Redis URL without its password and query; an unparseable
// URL is not shown at all, since its password could not be located.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable url>"
	}
	userinfo := ""
	if u.User != nil {
		userinfo = url.User(u.User.Username()).String()
		if _, has := u.User.Password(); has {
			userinfo += ":***"
		}
		u.User = nil
	}
	u.RawQuery, u.Fragment = "", "" // options, not the target; and never a secret
	out := u.String()
	if userinfo != "" {
		prefix := u.Scheme + "://"
		out = prefix + userinfo + "@" + strings.TrimPrefix(out, prefix)
	}
	return out
}
