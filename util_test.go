package taskhost_test

import (
	"net"
	"strconv"
	"testing"
)

func splitHostPort(t testing.TB, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return h, n
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func nil2discard() discard { return discard{} }
