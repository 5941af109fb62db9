package taskhost_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/plugins"
)

// wkCalls records the lifecycle calls of the recording plugins of one test.
type wkCalls struct {
	mu    sync.Mutex
	calls []string
}

func (c *wkCalls) add(s string) {
	c.mu.Lock()
	c.calls = append(c.calls, s)
	c.mu.Unlock()
}

// reset forgets earlier calls, for -count > 1.
func (c *wkCalls) reset() {
	c.mu.Lock()
	c.calls = nil
	c.mu.Unlock()
}

func (c *wkCalls) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

var errWkFail = errors.New("wk: refused on purpose")

// wkRecorder is a plugin that records Provision, Validate, Start, Stop and
// Cleanup into calls, and fails the step named by failAt.
type wkRecorder struct {
	id     string
	calls  *wkCalls
	failAt string
}

func (p *wkRecorder) PluginInfo() plugins.Info {
	return plugins.Info{ID: p.id, New: func() plugins.Plugin { return &wkRecorder{id: p.id, calls: p.calls, failAt: p.failAt} }}
}

func (p *wkRecorder) step(name string) error {
	p.calls.add(name + " " + p.id)
	if name == p.failAt {
		return errWkFail
	}
	return nil
}

func (p *wkRecorder) Provision(context.Context, plugins.Host) error { return p.step("provision") }
func (p *wkRecorder) Validate() error                               { return p.step("validate") }
func (p *wkRecorder) Start(context.Context) error                   { return p.step("start") }
func (p *wkRecorder) Stop(context.Context) error                    { return p.step("stop") }
func (p *wkRecorder) Cleanup() error                                { return p.step("cleanup") }

var (
	// Plugins sort by ID: a, b, then the failing one.
	wkProvisionCalls = &wkCalls{}
	wkServiceCalls   = &wkCalls{}
	wkValidateCalls  = &wkCalls{}
)

func init() {
	plugins.Register(&wkRecorder{id: "wk-prov-a", calls: wkProvisionCalls})
	plugins.Register(&wkRecorder{id: "wk-prov-b", calls: wkProvisionCalls})
	plugins.Register(&wkRecorder{id: "wk-prov-c", calls: wkProvisionCalls, failAt: "provision"})
	plugins.Register(&wkRecorder{id: "wk-val-a", calls: wkValidateCalls})
	plugins.Register(&wkRecorder{id: "wk-val-b", calls: wkValidateCalls, failAt: "validate"})
	plugins.Register(&wkRecorder{id: "wk-svc-a", calls: wkServiceCalls})
	plugins.Register(&wkRecorder{id: "wk-svc-b", calls: wkServiceCalls})
	plugins.Register(&wkRecorder{id: "wk-svc-c", calls: wkServiceCalls, failAt: "start"})
}

func pluginSections(ids ...string) map[string]map[string]any {
	m := map[string]map[string]any{}
	for _, id := range ids {
		m[id] = map[string]any{}
	}
	return m
}

func TestProvisionFailureRollsBackInReverse(t *testing.T) {
	t.Parallel()
	wkProvisionCalls.reset()
	cfg := testConfig(t, redistest.ClosedAddr(t))
	cfg.Plugins = pluginSections("wk-prov-a", "wk-prov-b", "wk-prov-c")
	rt, err := taskhost.New(cfg, taskhost.Options{Logger: taskhost.NewLogger(cfg.Log, nil2discard())})
	require.NoError(t, err)

	err = rt.Start(context.Background())
	require.ErrorIs(t, err, errWkFail)
	require.ErrorContains(t, err, "plugin wk-prov-c: provision")
	require.Equal(t, []string{
		"provision wk-prov-a", "validate wk-prov-a",
		"provision wk-prov-b", "validate wk-prov-b",
		"provision wk-prov-c",
		"cleanup wk-prov-c", "cleanup wk-prov-b", "cleanup wk-prov-a",
	}, wkProvisionCalls.list())
	require.Empty(t, rt.HealthAddr(), "the health server never started")
	require.NoError(t, rt.Stop(context.Background()), "Stop after a failed Start is a no-op")
	require.Len(t, wkProvisionCalls.list(), 8, "nothing is cleaned up twice")
}

func TestValidateFailureRollsBackInReverse(t *testing.T) {
	t.Parallel()
	wkValidateCalls.reset()
	cfg := testConfig(t, redistest.ClosedAddr(t))
	cfg.Plugins = pluginSections("wk-val-a", "wk-val-b")
	rt, err := taskhost.New(cfg, taskhost.Options{Logger: taskhost.NewLogger(cfg.Log, nil2discard())})
	require.NoError(t, err)

	err = rt.Start(context.Background())
	require.ErrorIs(t, err, errWkFail)
	require.ErrorContains(t, err, "plugin wk-val-b: validate")
	require.Equal(t, []string{
		"provision wk-val-a", "validate wk-val-a",
		"provision wk-val-b", "validate wk-val-b",
		"cleanup wk-val-b", "cleanup wk-val-a",
	}, wkValidateCalls.list())
	require.NoError(t, rt.Stop(context.Background()))
}

func TestServiceStartFailureRollsBackInReverse(t *testing.T) {
	t.Parallel()
	wkServiceCalls.reset()
	s := redistest.Start(t)
	cfg := testConfig(t, s.Addr())
	cfg.Plugins = pluginSections("wk-svc-a", "wk-svc-b", "wk-svc-c")
	rt, err := taskhost.New(cfg, taskhost.Options{Logger: taskhost.NewLogger(cfg.Log, nil2discard())})
	require.NoError(t, err)

	err = rt.Start(context.Background())
	require.ErrorIs(t, err, errWkFail)
	require.ErrorContains(t, err, "plugin wk-svc-c: start")
	require.Equal(t, []string{
		"provision wk-svc-a", "validate wk-svc-a",
		"provision wk-svc-b", "validate wk-svc-b",
		"provision wk-svc-c", "validate wk-svc-c",
		"start wk-svc-a", "start wk-svc-b", "start wk-svc-c",
		"stop wk-svc-b", "stop wk-svc-a",
		"cleanup wk-svc-c", "cleanup wk-svc-b", "cleanup wk-svc-a",
	}, wkServiceCalls.list())
	require.False(t, rt.Fetching(), "the queue server was stopped")
	require.NoError(t, rt.Stop(context.Background()))
}

func TestUnknownPluginIsConfigError(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, redistest.ClosedAddr(t))
	cfg.Plugins = pluginSections("wk-no-such")
	_, err := taskhost.New(cfg, taskhost.Options{Logger: taskhost.NewLogger(cfg.Log, nil2discard())})
	require.ErrorIs(t, err, taskhost.ErrInvalidConfig)
	require.ErrorContains(t, err, "plugins.wk-no-such")
	require.ErrorContains(t, err, "webhook", "the compiled-in IDs are listed")
}

func TestCheckConfigProvisionsPlugins(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, redistest.ClosedAddr(t))
	cfg.Plugins = map[string]map[string]any{"webhook": {"allow_hosts": []any{"127.0.0.0/8"}}}
	require.NoError(t, taskhost.CheckConfig(context.Background(), cfg))

	cfg.Plugins = map[string]map[string]any{"webhook": {"bogus": 1}}
	err := taskhost.CheckConfig(context.Background(), cfg)
	require.ErrorIs(t, err, taskhost.ErrInvalidConfig)
	require.ErrorContains(t, err, "plugins.webhook.bogus")
}

// hostRedis records the client its Host hands out.
type hostRedis struct{ got chan any }

func (p *hostRedis) PluginInfo() plugins.Info {
	return plugins.Info{ID: "host-redis", New: func() plugins.Plugin { return p }}
}

func (p *hostRedis) Provision(_ context.Context, h plugins.Host) error {
	p.got <- h.Redis()
	return nil
}

var hostRedisPlugin = &hostRedis{got: make(chan any, 1)}

func init() { plugins.Register(hostRedisPlugin) }

// TestHostRedisIsTheSharedClient: a plugin's Host.Redis is the runtime's own client.
func TestHostRedisIsTheSharedClient(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, redistest.Start(t).Addr())
	cfg.Plugins = map[string]map[string]any{"host-redis": nil}
	rt := startRuntime(t, cfg)
	require.Equal(t, rt.Redis(), <-hostRedisPlugin.got)
}

// badRegistrar registers an empty task type or a nil handler in Provision.
type badRegistrar struct {
	id       string
	taskType string
	fn       asynq.HandlerFunc
}

func (p *badRegistrar) PluginInfo() plugins.Info {
	return plugins.Info{ID: p.id, New: func() plugins.Plugin { return p }}
}

func (p *badRegistrar) Provision(_ context.Context, h plugins.Host) error {
	h.HandleFunc(p.taskType, p.fn)
	return nil
}

func init() {
	plugins.Register(&badRegistrar{id: "bad-empty-type", fn: func(context.Context, *asynq.Task) error { return nil }})
	plugins.Register(&badRegistrar{id: "bad-nil-handler", taskType: "bad:nil"})
}

// TestHostRefusesBadRegistrations: the runtime's host refuses an empty task
// type and a nil handler with a clear error naming the plugin (asynq's mux
// would panic), as pluginstest's does (TestRefusesEmptyTypeAndNilHandler):
// they are one implementation, internal/pluginhost.
func TestHostRefusesBadRegistrations(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]string{
		"bad-empty-type":  "HandleFunc with an empty task type",
		"bad-nil-handler": `HandleFunc "bad:nil" with a nil handler`,
	} {
		cfg := testConfig(t, redistest.ClosedAddr(t))
		cfg.Plugins = map[string]map[string]any{id: nil}
		err := taskhost.CheckConfig(context.Background(), cfg)
		require.ErrorContains(t, err, want)
		require.ErrorContains(t, err, id)
	}
}
