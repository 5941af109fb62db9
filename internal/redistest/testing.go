package redistest

import (
	"net"
	"strconv"
	"testing"
)

// Start starts a redis-server for the test and stops it in t.Cleanup.
// It fails the test, with install instructions, when redis-server is missing.
func Start(t testing.TB, opts ...Options) *Server {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// MustRestart restarts s and fails the test on error.
func (s *Server) MustRestart(t testing.TB) {
	t.Helper()
	if err := s.Restart(); err != nil {
		t.Fatalf("redistest: restart: %v", err)
	}
}

// ClosedAddr returns a loopback address on which nothing listens, for
// tests of a Redis that refuses connections.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
}
