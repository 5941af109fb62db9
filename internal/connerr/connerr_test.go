package connerr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskhost/taskhost/internal/connerr"
	"github.com/taskhost/taskhost/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"),
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"),
	)
}

// client is a go-redis client for addr that fails fast and never retries.
func client(t *testing.T, opts redis.Options) *redis.Client {
	t.Helper()
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	opts.MaxRetries, opts.DialerRetries = -1, 1
	opts.ContextTimeoutEnabled = true
	c := redis.NewClient(&opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// realErrors makes real redis-server processes fail in each way the table
// names, and returns the errors go-redis gave.
func realErrors(t *testing.T) map[string]error {
	t.Helper()
	ctx := context.Background()
	errs := map[string]error{}

	errs["refused"] = client(t, redis.Options{Addr: redistest.ClosedAddr(t)}).Ping(ctx).Err()

	frozen := redistest.Start(t)
	fc := client(t, redis.Options{Addr: frozen.Addr()})
	require.NoError(t, fc.Ping(ctx).Err())
	frozen.Pause()
	errs["timeout"] = fc.Ping(ctx).Err()
	frozen.Resume()

	closed := client(t, redis.Options{Addr: frozen.Addr()})
	require.NoError(t, closed.Close())
	errs["client closed"] = closed.Ping(ctx).Err()

	locked := redistest.Start(t, redistest.Options{Password: "s3cret-pw"})
	errs["NOAUTH"] = client(t, redis.Options{Addr: locked.Addr()}).Get(ctx, "k").Err()
	errs["WRONGPASS"] = client(t, redis.Options{Addr: locked.Addr(), Password: "wrong"}).Ping(ctx).Err()

	// A replica whose master is gone: writes are READONLY; with
	// replica-serve-stale-data off, reads are MASTERDOWN.
	replica := redistest.Start(t)
	rc := client(t, redis.Options{Addr: replica.Addr()})
	host, port, _ := net.SplitHostPort(redistest.ClosedAddr(t))
	require.NoError(t, rc.ReplicaOf(ctx, host, port).Err())
	errs["READONLY"] = rc.Set(ctx, "k", "v", 0).Err()
	require.NoError(t, rc.ConfigSet(ctx, "replica-serve-stale-data", "no").Err())
	errs["MASTERDOWN"] = rc.Get(ctx, "k").Err()

	// A cluster node that serves no slot.
	dir := t.TempDir()
	node := redistest.Start(t, redistest.Options{Args: []string{
		"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf")}})
	errs["CLUSTERDOWN"] = client(t, redis.Options{Addr: node.Addr()}).Get(ctx, "k").Err()

	errs["WRONGTYPE"] = func() error {
		c := client(t, redis.Options{Addr: replica.Addr()})
		require.NoError(t, c.ReplicaOf(ctx, "NO", "ONE").Err())
		require.NoError(t, c.LPush(ctx, "list", "x").Err())
		return c.Get(ctx, "list").Err()
	}()
	errs["nil"] = client(t, redis.Options{Addr: replica.Addr()}).Get(ctx, "missing").Err()
	return errs
}

// TestDown is the one table of what counts as Redis being down. Most errors
// come from real redis-server processes failing in that way.
func TestDown(t *testing.T) {
	t.Parallel()
	real := realErrors(t)
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		// Not reached, or no answer in time.
		{"refused", real["refused"], true},
		{"refused (constructed)", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, true},
		// A reset is what a read returns when the server dies under an
		// open connection; go-redis's pool health check makes it hard to
		// produce on demand, so it is constructed as net returns it.
		{"reset", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, true},
		{"reset, wrapped", fmt.Errorf("x: %w", syscall.ECONNRESET), true},
		{"broken pipe", fmt.Errorf("write: %w", syscall.EPIPE), true},
		{"EOF", io.EOF, true},
		{"unexpected EOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"timeout (frozen server)", real["timeout"], true},
		{"context deadline (a net.Error timeout)", context.DeadlineExceeded, true},
		{"pool timeout", redis.ErrPoolTimeout, true},
		{"pool exhausted", redis.ErrPoolExhausted, true},
		{"ErrClosed", real["client closed"], true},
		// Up, but cannot serve for now: restart, failover, cluster.
		{"LOADING", errors.New("LOADING Redis is loading the dataset in memory"), true},
		{"READONLY", real["READONLY"], true},
		{"MASTERDOWN", real["MASTERDOWN"], true},
		{"CLUSTERDOWN", real["CLUSTERDOWN"], true},
		{"TRYAGAIN", errors.New("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{"max clients", errors.New("ERR max number of clients reached"), true},
		// The same causes, flattened into text by asynq's scripts.
		{"asynq: refused", errors.New("UNKNOWN: redis eval error: dial tcp 127.0.0.1:1: connect: connection refused"), true},
		{"asynq: timeout", errors.New("UNKNOWN: redis eval error: read tcp 127.0.0.1:2->127.0.0.1:1: i/o timeout"), true},
		{"asynq: EOF", errors.New("UNKNOWN: redis eval error: EOF"), true},
		{"asynq: LOADING", errors.New("UNKNOWN: redis eval error: LOADING Redis is loading the dataset in memory"), true},
		{"asynq: READONLY", errors.New("UNKNOWN: redis eval error: READONLY You can't write against a read only replica."), true},
		// Answers about the call, and the caller giving up.
		{"nil error", nil, false},
		{"redis.Nil", real["nil"], false},
		{"WRONGTYPE", real["WRONGTYPE"], false},
		{"NOAUTH: an auth problem, not an outage", real["NOAUTH"], false},
		{"WRONGPASS", real["WRONGPASS"], false},
		{"asynq: NOAUTH", errors.New("UNKNOWN: redis eval error: NOAUTH Authentication required."), false},
		{"OOM", errors.New("OOM command not allowed when used memory > 'maxmemory'."), false},
		{"script error", errors.New("UNKNOWN: redis eval error: ERR Error running script: attempt to compare nil"), false},
		{"duplicate task", fmt.Errorf("%w", asynq.ErrDuplicateTask), false},
		{"cancelled", context.Canceled, false},
		{"cancelled, wrapped", fmt.Errorf("get: %w", context.Canceled), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want || tc.err != nil {
				require.Error(t, tc.err, "the case must produce an error")
			}
			require.Equal(t, tc.want, connerr.Down(tc.err), "Down(%v)", tc.err)
		})
	}
}

func TestDownFor(t *testing.T) {
	t.Parallel()
	live := context.Background()
	require.True(t, connerr.DownFor(live, io.EOF))
	done, cancel := context.WithCancel(live)
	cancel()
	require.False(t, connerr.DownFor(done, io.EOF), "a call whose context ended failed because of it")
	require.False(t, connerr.DownFor(live, redis.Nil))
}

// TestTimedOut: only a reply that did not come in time may hide a command
// that ran; a refused connection or a server reply does not.
func TestTimedOut(t *testing.T) {
	t.Parallel()
	real := realErrors(t)
	require.True(t, connerr.TimedOut(real["timeout"]), "frozen server: %v", real["timeout"])
	require.True(t, connerr.TimedOut(fmt.Errorf("dequeue: %w", real["timeout"])), "wrapped")
	for _, name := range []string{"refused", "client closed", "READONLY", "nil"} {
		require.False(t, connerr.TimedOut(real[name]), "%s: %v", name, real[name])
	}
	require.False(t, connerr.TimedOut(nil))
	require.False(t, connerr.TimedOut(io.EOF))
}
