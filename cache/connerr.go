package cache

import (
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// IsConnError reports whether err means that Redis could not be reached or
// did not answer, rather than that it answered with an error: a net.Error
// (dial failures, refused connections, timeouts), io.EOF, a reset or broken
// connection, a connection-pool timeout or a closed client. Check the
// caller's own context first: a context error also satisfies net.Error.
func IsConnError(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, redis.ErrPoolTimeout) ||
		errors.Is(err, redis.ErrPoolExhausted) ||
		errors.Is(err, redis.ErrClosed)
}
