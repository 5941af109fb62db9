package redistest

import (
	"net"
	"strconv"
	"sync"
	"syscall"
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
// tests of a Redis that refuses connections. The port stays bound, without
// listening, until the test ends or a server starts on it (New with
// Options.Port): a dial is refused, and no other test's server, nor a
// dial's own source port (a TCP self-connect), can take it meanwhile, as
// happened with a port that was merely free a moment ago.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("redistest: closed address: %v", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		_ = syscall.Close(fd)
		t.Fatalf("redistest: closed address: bind: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		_ = syscall.Close(fd)
		t.Fatalf("redistest: closed address: %v", err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	reserved.Store(port, fd)
	t.Cleanup(func() { release(port) })
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// reserved holds the sockets of ClosedAddr by port, until a server starts
// on the port (New with Options.Port) or the test ends.
var reserved sync.Map

// release closes the reserved socket of port, if any.
func release(port int) {
	if fd, ok := reserved.LoadAndDelete(port); ok {
		_ = syscall.Close(fd.(int))
	}
}
