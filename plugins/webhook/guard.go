package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// RefusedError is the error of a connection that the SSRF guard refused.
// The delivery is archived with it as the reason.
type RefusedError struct {
	Addr   netip.Addr // the resolved address that was refused
	Reason string     // e.g. "loopback", "private", "not in allow_hosts"
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("destination %s refused: %s", e.Addr, e.Reason)
}

// guard decides which destinations may be dialed. The zero guard admits
// public addresses only.
type guard struct {
	hosts    map[string]bool // host names admitted whatever they resolve to
	prefixes []netip.Prefix  // addresses admitted
}

// parseAllowHosts builds a guard from allow_hosts. Each entry is a CIDR, an
// IP address or a host name.
func parseAllowHosts(entries []string) (*guard, error) {
	g := &guard{hosts: map[string]bool{}}
	var errs []error
	for i, raw := range entries {
		e := strings.ToLower(strings.TrimSpace(raw))
		if p, err := netip.ParsePrefix(e); err == nil {
			g.prefixes = append(g.prefixes, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(e); err == nil {
			a = a.Unmap().WithZone("")
			g.prefixes = append(g.prefixes, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		if !validHostname(e) {
			errs = append(errs, fmt.Errorf("allow_hosts[%d]: %q is not a host name, an IP address or a CIDR", i, raw))
			continue
		}
		g.hosts[strings.TrimSuffix(e, ".")] = true
	}
	return g, errors.Join(errs...)
}

// open reports whether the guard has no list, so that public addresses are
// admitted and the others refused.
func (g *guard) open() bool { return len(g.hosts) == 0 && len(g.prefixes) == 0 }

// hostListed reports whether host (from a URL or a dial address) was listed
// by name.
func (g *guard) hostListed(host string) bool {
	return g.hosts[strings.TrimSuffix(strings.ToLower(host), ".")]
}

// checkAddr decides about one resolved address.
func (g *guard) checkAddr(a netip.Addr) error {
	a = a.Unmap().WithZone("")
	if g.open() {
		if reason := nonPublic(a); reason != "" {
			return &RefusedError{Addr: a, Reason: reason + " address (list it in plugins.webhook.allow_hosts to allow it)"}
		}
		return nil
	}
	for _, p := range g.prefixes {
		if p.Contains(a) {
			return nil
		}
	}
	return &RefusedError{Addr: a, Reason: "not in plugins.webhook.allow_hosts"}
}

// control runs after name resolution, before each connect, on the address
// actually dialed: a name that resolves or re-binds to a refused address
// cannot slip through.
func (g *guard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook: unexpected dial address %q: %w", address, err)
	}
	return g.checkAddr(ap.Addr())
}

// dialContext returns the transport's dial function: names listed in
// allow_hosts are dialed as they are, and everything else through the check.
func (g *guard) dialContext(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	trusted := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	checked := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: g.control}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err == nil && g.hostListed(host) {
			return trusted.DialContext(ctx, network, addr)
		}
		return checked.DialContext(ctx, network, addr)
	}
}

var reserved = []struct {
	p      netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (CGNAT)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "reserved"},
	{netip.MustParsePrefix("198.18.0.0/15"), "reserved"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"}, // includes 255.255.255.255
	{netip.MustParsePrefix("64:ff9b:1::/48"), "reserved"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
}

var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// nonPublic returns why a should not be reached from a webhook, or "" when it
// is a public address.
func nonPublic(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "invalid"
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate():
		return "private"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	}
	for _, r := range reserved {
		if r.p.Contains(a) {
			return r.reason
		}
	}
	if nat64.Contains(a) { // well-known NAT64: judge the IPv4 address inside
		b := a.As16()
		return nonPublic(netip.AddrFrom4([4]byte(b[12:])))
	}
	return ""
}

// validHostname reports whether s looks like a DNS name: labels of letters,
// digits, '-' and '_' separated by dots.
func validHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
