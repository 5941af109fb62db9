package redisconn

import (
	"context"
	"crypto/tls"
	"net"
	"time"
)

// keepAliveInterval and keepAliveCount follow go-redis' own dialer: after the
// idle time, 3 unanswered probes 5 s apart declare the peer dead.
const (
	keepAliveInterval = 5 * time.Second
	keepAliveCount    = 3
)

// newDialer returns a dialer with TCP keep-alive whose TLS handshake, unlike
// go-redis' default tls.DialWithDialer, is bounded by the dial context too.
// keepAlive < 0 turns keep-alive off.
func newDialer(timeout, keepAlive time.Duration, tc *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := &net.Dialer{Timeout: timeout}
	if keepAlive < 0 {
		nd.KeepAlive = -1
	} else {
		nd.KeepAliveConfig = net.KeepAliveConfig{
			Enable:   true,
			Idle:     keepAlive,
			Interval: min(keepAliveInterval, keepAlive),
			Count:    keepAliveCount,
		}
	}
	if tc == nil {
		return nd.DialContext
	}
	td := &tls.Dialer{NetDialer: nd, Config: tc}
	return td.DialContext
}
