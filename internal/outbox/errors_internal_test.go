package outbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestIsConnError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := []error{
		&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED},
		fmt.Errorf("wrapped: %w", io.EOF),
		io.ErrUnexpectedEOF,
		redis.ErrPoolTimeout,
		redis.ErrClosed,
		context.DeadlineExceeded,
		// asynq's scripts flatten the cause into text:
		errors.New("UNKNOWN: redis eval error: dial tcp 127.0.0.1:1: connect: connection refused"),
		errors.New("UNKNOWN: redis eval error: read tcp 127.0.0.1:2->127.0.0.1:1: i/o timeout"),
		errors.New("UNKNOWN: redis eval error: EOF"),
		errors.New("UNKNOWN: redis eval error: LOADING Redis is loading the dataset in memory"),
		errors.New("UNKNOWN: redis eval error: READONLY You can't write against a read only replica."),
	}
	for _, err := range conn {
		require.True(t, isConnError(ctx, err), "%v", err)
	}
	refusals := []error{
		nil,
		fmt.Errorf("%w", asynq.ErrDuplicateTask),
		fmt.Errorf("%w", asynq.ErrTaskIDConflict),
		errors.New("Unique TTL cannot be less than 1s"),
		errors.New("UNKNOWN: redis eval error: ERR Error running script: attempt to compare nil"),
		errors.New("UNKNOWN: redis eval error: OOM command not allowed when used memory > 'maxmemory'."),
	}
	for _, err := range refusals {
		require.False(t, isConnError(ctx, err), "%v", err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	require.False(t, isConnError(done, context.Canceled), "the caller's own cancellation is not an outage")
	require.False(t, isConnError(done, &net.OpError{Op: "read", Err: syscall.ECONNRESET}))
}

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	task := asynq.NewTaskWithHeaders("rt:a", []byte{0, 1, 2, 255}, map[string]string{"h": "v"}, asynq.Queue("q"))
	s, err := compose(task, []asynq.Option{asynq.ProcessIn(3e9), asynq.Unique(5e9), asynq.Group("g")}, "id-1", time.Now())
	require.NoError(t, err)
	b, err := s.encode()
	require.NoError(t, err)
	got, err := decode(b)
	require.NoError(t, err)
	require.Equal(t, s.ID, got.ID)
	require.Equal(t, s.Payload, got.Payload)
	require.Equal(t, s.Headers, got.Headers)
	require.Equal(t, "q", got.Queue)
	require.True(t, s.ProcessAt.Equal(got.ProcessAt))
	require.True(t, s.Accepted.Equal(got.Accepted))
	require.Equal(t, s.Unique, got.Unique)
	require.Equal(t, "g", got.Group)

	_, err = decode([]byte(`{"v":9,"id":"x","type":"t","queue":"q"}`))
	require.ErrorContains(t, err, "version 9")
}
