package redisconn_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskhost/taskhost/internal/redisconn"
)

func TestMain(m *testing.M) {
	// go-redis' own dial-failure messages would flood test output; the
	// monitor's transition logs are what the tests look at.
	redis.SetLogger(redisconn.LibraryLogger(slog.New(slog.DiscardHandler)))
	code := m.Run()
	if code == 0 {
		// Like goleak.VerifyTestMain, with a longer grace: after many failed
		// dials go-redis runs a background dial probe that sleeps 1 s between
		// tries and exits at its next wake-up after Client.Close.
		deadline := time.Now().Add(3 * time.Second)
		err := goleak.Find()
		for err != nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			err = goleak.Find()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// cfgFor returns the default config pointed at addr ("127.0.0.1:port").
func cfgFor(t testing.TB, addr string) redisconn.Config {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	cfg := redisconn.DefaultConfig()
	cfg.Host = host
	cfg.Port, err = strconv.Atoi(port)
	require.NoError(t, err)
	return cfg
}

// newClient builds a client from cfg and closes it when the test ends.
func newClient(t testing.TB, cfg redisconn.Config) redis.UniversalClient {
	t.Helper()
	c, err := redisconn.NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

type fixture struct {
	cfg    redisconn.Config
	client redis.UniversalClient
	mon    *redisconn.Monitor
	logs   *logCapture
}

// setup builds the client and a started monitor for addr, with logs captured
// at INFO. The monitor closes before the client when the test ends.
func setup(t testing.TB, cfg redisconn.Config, tweak ...func(*redisconn.MonitorOptions)) *fixture {
	t.Helper()
	f := &fixture{cfg: cfg, logs: &logCapture{}}
	f.client = newClient(t, cfg)
	opts := redisconn.MonitorOptionsFrom(cfg, slog.New(slog.NewJSONHandler(f.logs, nil)))
	for _, fn := range tweak {
		fn(&opts)
	}
	f.mon = redisconn.NewMonitor(f.client, opts)
	f.mon.Start()
	t.Cleanup(f.mon.Close)
	return f
}

// waitState waits up to d for one of the states and returns how long it took.
func waitState(t testing.TB, m *redisconn.Monitor, d time.Duration, want redisconn.State, also ...redisconn.State) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	require.NoError(t, m.Wait(ctx, want, also...))
	return time.Since(start)
}

// logCapture is an io.Writer collecting JSON log lines.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logCapture) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logCapture) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// records returns the log lines decoded.
func (l *logCapture) records(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	for sc.Scan() {
		var r map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		out = append(out, r)
	}
	return out
}

// transitionLines returns "from>to" for each logged transition, in order.
func (l *logCapture) transitionLines(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, r := range l.records(t) {
		if to, ok := r["to"].(string); ok {
			out = append(out, r["from"].(string)+">"+to)
		}
	}
	return out
}
