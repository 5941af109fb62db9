package taskhost_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/plugins"
)

// u10Handled counts u10:count tasks handled by the u10-count plugin.
var u10Handled atomic.Int64

// u10Count is a plugin that handles u10:count tasks by counting them.
type u10Count struct{}

func (u10Count) PluginInfo() plugins.Info {
	return plugins.Info{ID: "u10-count", New: func() plugins.Plugin { return u10Count{} }}
}

func (u10Count) Provision(_ context.Context, h plugins.Host) error {
	h.HandleFunc("u10:count", func(context.Context, *asynq.Task) error { u10Handled.Add(1); return nil })
	return nil
}

func init() { plugins.Register(u10Count{}) }

// u10Client leaves no idle connection behind for goleak.
var u10Client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func u10Do(t *testing.T, method, url string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := u10Client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(body)
}

type u10Queue struct {
	Queue     string `json:"queue"`
	Pending   int    `json:"pending"`
	Processed int    `json:"processed"`
}

func u10Queues(t *testing.T, base string, header ...string) map[string]u10Queue {
	t.Helper()
	code, body := u10Do(t, http.MethodGet, base+"/ui/api/queues", header...)
	require.Equal(t, http.StatusOK, code, body)
	var out struct{ Queues []u10Queue }
	require.NoError(t, json.Unmarshal([]byte(body), &out), body)
	m := map[string]u10Queue{}
	for _, q := range out.Queues {
		m[q.Queue] = q
	}
	return m
}

// TestUIOnHealthListener: with ui.enabled on a loopback health listener,
// /ui/ serves the app next to the health endpoints, the API reports the
// worker's queues, read-only refuses a delete, and the worker keeps
// processing on the shared client after UI requests.
func TestUIOnHealthListener(t *testing.T) {
	s := redistest.Start(t)
	cfg := testConfig(t, s.Addr())
	cfg.UI.Enabled = true
	cfg.Plugins = map[string]map[string]any{"u10-count": {}}
	rt := startRuntime(t, cfg)
	waitState(t, rt, 5*time.Second, "ready")
	base := "http://" + rt.HealthAddr()
	require.Equal(t, rt.HealthAddr(), rt.UIAddr())

	ctx := context.Background()
	start := u10Handled.Load()
	for range 4 {
		_, err := rt.Client().EnqueueContext(ctx, asynq.NewTask("u10:parked", nil), asynq.Queue("u10-parked"))
		require.NoError(t, err)
	}
	for range 3 {
		_, err := rt.Client().EnqueueContext(ctx, asynq.NewTask("u10:count", nil))
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return u10Handled.Load()-start == 3 }, 10*time.Second, 20*time.Millisecond)

	for _, p := range []string{"/ui/", "/ui"} { // /ui redirects to /ui/
		code, body := u10Do(t, http.MethodGet, base+p)
		require.Equal(t, http.StatusOK, code, p)
		require.Contains(t, body, `window.FLAG_READ_ONLY="true"`, p)
	}
	var qs map[string]u10Queue
	require.Eventually(t, func() bool { qs = u10Queues(t, base); return qs["default"].Processed == 3 }, 5*time.Second, 20*time.Millisecond, "%+v", qs)
	require.Equal(t, 4, qs["u10-parked"].Pending)

	code, _ := u10Do(t, http.MethodDelete, base+"/ui/api/queues/u10-parked/pending_tasks:delete_all")
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, 4, u10Queues(t, base)["u10-parked"].Pending)

	code, _ = u10Do(t, http.MethodGet, base+"/livez")
	require.Equal(t, http.StatusOK, code, "the health endpoints share the listener")

	for range 2 {
		_, err := rt.Client().EnqueueContext(ctx, asynq.NewTask("u10:count", nil))
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return u10Handled.Load()-start == 5 }, 10*time.Second, 20*time.Millisecond,
		"the worker stopped processing after UI requests")
	require.NoError(t, rt.Redis().Ping(ctx).Err(), "the UI did not close the shared client")
}

// TestUIOwnListener: with ui.addr the dashboard has its own listener, with
// auth applied on loopback when configured, and stops with the runtime.
func TestUIOwnListener(t *testing.T) {
	s := redistest.Start(t)
	cfg := testConfig(t, s.Addr())
	cfg.UI.Enabled = true
	cfg.UI.Addr = "127.0.0.1:0"
	cfg.UI.Auth.Token = "u10-token"
	rt, err := taskhost.New(cfg, taskhost.Options{Logger: taskhost.NewLogger(cfg.Log, io.Discard)})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			require.NoError(t, rt.Stop(context.Background()))
		}
	})
	require.NotEqual(t, rt.HealthAddr(), rt.UIAddr())
	ui := "http://" + rt.UIAddr()

	code, _ := u10Do(t, http.MethodGet, ui+"/ui/")
	require.Equal(t, http.StatusUnauthorized, code)
	code, body := u10Do(t, http.MethodGet, ui+"/", "Authorization", "Bearer u10-token") // / redirects to /ui/
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "FLAG_ROOT_PATH")
	code, _ = u10Do(t, http.MethodGet, "http://"+rt.HealthAddr()+"/ui/")
	require.Equal(t, http.StatusNotFound, code, "not on the health listener too")

	require.NoError(t, rt.Stop(context.Background()))
	stopped = true
	_, err = u10Client.Get(ui + "/ui/")
	require.Error(t, err, "the dashboard listener closes with the runtime")
}

// TestUINotLoopback: on a listener that is not loopback the dashboard
// needs credentials, and a config without them does not start.
func TestUINotLoopback(t *testing.T) {
	s := redistest.Start(t)
	cfg := testConfig(t, s.Addr())
	cfg.UI.Enabled = true
	cfg.UI.Addr = "0.0.0.0:0" // all interfaces; the test connects on 127.0.0.1

	_, err := taskhost.New(cfg, taskhost.Options{Logger: taskhost.NewLogger(cfg.Log, io.Discard)})
	require.ErrorIs(t, err, taskhost.ErrInvalidConfig)
	require.ErrorContains(t, err, "ui.auth")

	cfg.UI.Auth.Username, cfg.UI.Auth.Password = "ops", "u10-pw"
	rt := startRuntime(t, cfg)
	waitState(t, rt, 5*time.Second, "ready") // the API answers 503 until then
	_, port := splitHostPort(t, rt.UIAddr())
	ui := "http://127.0.0.1:" + strconv.Itoa(port)
	code, _ := u10Do(t, http.MethodGet, ui+"/ui/api/queues")
	require.Equal(t, http.StatusUnauthorized, code)
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth("ops", "u10-pw")
	code, _ = u10Do(t, http.MethodGet, ui+"/ui/api/queues", "Authorization", req.Header.Get("Authorization"))
	require.Equal(t, http.StatusOK, code)
}
