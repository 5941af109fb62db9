package scaletest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/health"
	"github.com/taskhost/taskhost/internal/testlog"
	"github.com/taskhost/taskhost/plugins"
)

// s8RecordID is the test plugin that records each run of an s8:rec task
// into the counter named by its config key "sink".
const (
	s8RecordID   = "s8-record"
	s8RecordType = "s8:rec"
)

// s8Sinks maps a sink name to the counter that s8-record instances
// configured with that name write to.
var s8Sinks sync.Map // string -> *counter

func init() { plugins.Register(&s8Record{}) }

type s8Record struct{}

func (*s8Record) PluginInfo() plugins.Info {
	return plugins.Info{ID: s8RecordID, New: func() plugins.Plugin { return &s8Record{} }}
}

func (*s8Record) Provision(_ context.Context, h plugins.Host) error {
	var cfg struct {
		Sink string `koanf:"sink"`
	}
	if err := h.DecodeConfig(&cfg); err != nil {
		return err
	}
	v, ok := s8Sinks.Load(cfg.Sink)
	if !ok {
		return fmt.Errorf("s8-record: no sink %q", cfg.Sink)
	}
	c := v.(*counter)
	h.HandleFunc(s8RecordType, func(ctx context.Context, _ *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		c.add(id)
		return nil
	})
	return nil
}

// newSink registers a counter under the test's name and removes it at the end.
func newSink(t *testing.T) (string, *counter) {
	t.Helper()
	name := t.Name()
	c := newCounter()
	_, dup := s8Sinks.LoadOrStore(name, c)
	require.False(t, dup)
	t.Cleanup(func() { s8Sinks.Delete(name) })
	return name, c
}

// runtimeConfig is a worker config with the s8-record plugin writing to
// sink, the health listener on a free loopback port, and the given queues.
func runtimeConfig(sink string, queues ...string) taskhost.Config {
	cfg := taskhost.DefaultConfig()
	cfg.Health.Addr = "127.0.0.1:0"
	cfg.Worker.ShutdownTimeout = 5 * time.Second
	cfg.Log.Level = "warn"
	cfg.Worker.Queues = map[string]int{}
	for _, q := range queues {
		cfg.Worker.Queues[q] = 1
	}
	cfg.Plugins = map[string]map[string]any{s8RecordID: {"sink": sink}}
	return cfg
}

// syncBuffer is the one goroutine-safe log buffer of the tests.
type syncBuffer = testlog.Buffer

// lines returns the log lines that contain sub.
func logLines(s *syncBuffer, sub string) []string {
	var out []string
	for _, l := range strings.Split(s.String(), "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

// startRuntime starts a runtime for cfg, logging into the returned buffer,
// waits until it is ready and fetching, and stops it in t.Cleanup. The log
// is printed when the test fails.
func startRuntime(t *testing.T, cfg taskhost.Config) (*taskhost.Runtime, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	rt, err := taskhost.New(cfg, taskhost.Options{Logger: taskhost.NewLogger(cfg.Log, logs), Version: "s8"})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, rt.Stop(ctx))
		if t.Failed() {
			t.Logf("runtime log:\n%s", tailString(logs.String(), 4000))
		}
	})
	require.Eventually(t, func() bool { return rt.State().String() == "ready" && rt.Fetching() },
		10*time.Second, 10*time.Millisecond, "runtime ready; state %s", rt.State())
	return rt, logs
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// healthReport fetches /healthz from a runtime's health listener.
func healthReport(t *testing.T, rt *taskhost.Runtime) (int, health.Report) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + rt.HealthAddr() + "/healthz")
	require.NoError(t, err)
	defer resp.Body.Close()
	var rep health.Report
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&rep))
	return resp.StatusCode, rep
}
