package pluginstest_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/healthcheck"
	"github.com/taskhost/taskhost/plugins"
	"github.com/taskhost/taskhost/plugins/pluginstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a plugin that records its lifecycle calls.
type recorder struct {
	calls     []string
	failProv  bool
	failValid bool
	twice     bool
	cfg       struct {
		Greeting string `koanf:"greeting"`
	}
}

func (*recorder) PluginInfo() plugins.Info {
	return plugins.Info{ID: "rec", New: func() plugins.Plugin { return &recorder{} }}
}

func (r *recorder) Provision(ctx context.Context, h plugins.Host) error {
	r.calls = append(r.calls, "provision")
	if err := h.DecodeConfig(&r.cfg); err != nil {
		return err
	}
	h.HandleFunc("rec:do", func(ctx context.Context, t *asynq.Task) error {
		h.Logger().Info("did", "payload", string(t.Payload()))
		return nil
	})
	if r.twice {
		h.HandleFunc("rec:do", func(context.Context, *asynq.Task) error { return nil })
	}
	if r.failProv {
		return errors.New("provision failed")
	}
	return nil
}

func (r *recorder) Validate() error {
	r.calls = append(r.calls, "validate")
	if r.failValid {
		return errors.New("invalid")
	}
	return nil
}

func (r *recorder) Cleanup() error {
	r.calls = append(r.calls, "cleanup")
	return nil
}

func setup(t *testing.T, opts pluginstest.Options) *pluginstest.Host {
	t.Helper()
	if opts.ID == "" {
		opts.ID = "rec"
	}
	return pluginstest.NewHost(t, opts)
}

func TestProvisionOrder(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	t.Run("success", func(t *testing.T) {
		h := setup(t, pluginstest.Options{Config: map[string]any{"greeting": "hi"}})
		require.NoError(t, h.Provision(t.Context(), r))
		require.Equal(t, []string{"provision", "validate"}, r.calls)
		require.Equal(t, "hi", r.cfg.Greeting)
		require.Equal(t, []string{"rec:do"}, h.TaskTypes())
	})
	// Cleanup ran when the subtest ended.
	require.Equal(t, []string{"provision", "validate", "cleanup"}, r.calls)

	for _, tt := range []struct {
		name  string
		r     *recorder
		err   string
		calls []string
	}{
		{"provision fails", &recorder{failProv: true}, "plugin rec: provision: provision failed", []string{"provision", "cleanup"}},
		{"validate fails", &recorder{failValid: true}, "plugin rec: validate: invalid", []string{"provision", "validate", "cleanup"}},
		{"task type twice", &recorder{twice: true}, `plugin rec: provision: task type "rec:do" is registered twice`, []string{"provision", "cleanup"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := setup(t, pluginstest.Options{})
			require.EqualError(t, h.Provision(t.Context(), tt.r), tt.err)
			require.Equal(t, tt.calls, tt.r.calls)
		})
	}
}

func TestDecodeConfigIsStrict(t *testing.T) {
	t.Parallel()
	h := setup(t, pluginstest.Options{Config: map[string]any{"greeting": "hi", "colour": "red"}})
	r := &recorder{}
	err := h.Provision(t.Context(), r)
	require.EqualError(t, err, "plugin rec: provision: invalid configuration: plugins.rec.colour: unknown key")
	require.ErrorIs(t, err, plugins.ErrInvalidConfig)
}

func TestRunAndLogs(t *testing.T) {
	t.Parallel()
	h := setup(t, pluginstest.Options{})
	require.NoError(t, h.Provision(t.Context(), &recorder{}))
	require.NoError(t, h.Run(t.Context(), "rec:do", []byte("x")))
	logs := h.Logs()
	require.Contains(t, logs, "msg=did component=plugin plugin=rec payload=x")

	err := h.Run(t.Context(), "rec:other", nil)
	require.ErrorIs(t, err, pluginstest.ErrNoHandler)
	require.ErrorContains(t, err, `"rec:other"`)
}

func TestSchedule(t *testing.T) {
	t.Parallel()
	h := setup(t, pluginstest.Options{})
	task := asynq.NewTask("rec:tick", nil)
	id, err := h.Schedule("@every 1m", task, asynq.MaxRetry(1))
	require.NoError(t, err)
	id2, err := h.Schedule("*/5 * * * *", task)
	require.NoError(t, err)
	require.NotEqual(t, id, id2)
	require.Equal(t, "plugins.rec.rec:tick", id, "the entry ID the runtime gives, part of each tick's task ID")
	require.Equal(t, id+"#2", id2)

	_, err = h.Schedule("every minute", task)
	require.ErrorContains(t, err, `schedule "every minute" for rec:tick`)
	_, err = h.Schedule("* * * * * *", task) // six fields: asynq's parser refuses seconds
	require.Error(t, err)
	_, err = h.Schedule("@hourly", task, asynq.TaskID("mine")) // the scheduler sets each tick's ID
	require.ErrorContains(t, err, "TaskID")
	_, err = h.Schedule("@every 1m", task, asynq.Unique(time.Minute))
	require.ErrorContains(t, err, "shortest gap")

	s := h.Schedules()
	require.Len(t, s, 2)
	require.Equal(t, pluginstest.Schedule{EntryID: id, Spec: "@every 1m", Task: task, Opts: []asynq.Option{asynq.MaxRetry(1)}}, s[0])
	require.Equal(t, "*/5 * * * *", s[1].Spec)
}

func TestChecks(t *testing.T) {
	t.Parallel()
	h := setup(t, pluginstest.Options{CheckTimeout: 50 * time.Millisecond})
	bad := errors.New("bad")
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	h.AddCheck(healthcheck.Check{Name: "ok", Run: func(context.Context) error { return nil }})
	h.AddCheck(healthcheck.Check{Name: "bad", Critical: true, Run: func(context.Context) error { return bad }})
	h.AddCheck(healthcheck.Check{Name: "stuck", Run: func(context.Context) error { <-release; return nil }})

	require.NoError(t, h.RunCheck(t.Context(), "ok"))
	require.ErrorIs(t, h.RunCheck(t.Context(), "bad"), bad)
	start := time.Now()
	require.ErrorIs(t, h.RunCheck(t.Context(), "stuck"), context.DeadlineExceeded, "a check that ignores ctx still times out")
	require.Less(t, time.Since(start), time.Second)
	require.ErrorIs(t, h.RunCheck(t.Context(), "nope"), pluginstest.ErrNoCheck)

	names := []string{}
	for _, c := range h.Checks() {
		names = append(names, c.Name)
	}
	require.Equal(t, []string{"ok", "bad", "stuck"}, names)
}

type checkTwice struct{}

func (checkTwice) PluginInfo() plugins.Info { return plugins.Info{ID: "c"} }
func (checkTwice) Provision(ctx context.Context, h plugins.Host) error {
	c := healthcheck.Check{Name: "x", Run: func(context.Context) error { return nil }}
	h.AddCheck(c)
	h.AddCheck(c)
	return nil
}

func TestCheckAddedTwiceFailsProvision(t *testing.T) {
	t.Parallel()
	h := setup(t, pluginstest.Options{})
	require.ErrorContains(t, h.Provision(t.Context(), checkTwice{}), `duplicate check name: "rec.x"`)
}

func TestCache(t *testing.T) {
	t.Parallel()
	h := setup(t, pluginstest.Options{})
	ctx := t.Context()
	require.NoError(t, h.Cache().Set(ctx, "k", []byte("v"), time.Minute))
	v, err := h.Cache().Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "v", string(v))
	_, err = h.Cache().Get(ctx, "missing")
	require.ErrorIs(t, err, cache.ErrNotFound)

	// Each Host has its own store.
	_, err = setup(t, pluginstest.Options{}).Cache().Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrNotFound)
}

func TestLimiter(t *testing.T) {
	t.Parallel()
	h := setup(t, pluginstest.Options{})
	l, err := h.Limiter("api", "2-M")
	require.NoError(t, err)
	require.Equal(t, "rec.api", l.Name(), "named as the runtime names it")
	ctx := t.Context()
	for i := range 2 {
		res, err := l.Allow(ctx, "k")
		require.NoError(t, err)
		require.False(t, res.Reached, "event %d", i)
	}
	res, err := l.Allow(ctx, "k")
	require.NoError(t, err)
	require.True(t, res.Reached)
	require.InDelta(t, time.Minute.Seconds(), time.Until(res.Reset).Seconds(), 2)

	_, err = h.Limiter("bad", "lots")
	require.Error(t, err)
}

func TestEnqueue(t *testing.T) {
	t.Parallel()
	h := setup(t, pluginstest.Options{})
	info, err := h.Enqueue(t.Context(), asynq.NewTask("rec:do", []byte("p")))
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStatePending, info.State)
	require.Len(t, h.Enqueued(), 1)
	require.Equal(t, "rec:do", h.Enqueued()[0].Type())

	var got []string
	h2 := setup(t, pluginstest.Options{Enqueue: func(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
		got = append(got, task.Type())
		return nil, errors.New("down")
	}})
	_, err = h2.Enqueue(t.Context(), asynq.NewTask("rec:do", nil))
	require.EqualError(t, err, "down")
	require.Equal(t, []string{"rec:do"}, got)
	require.Len(t, h2.Enqueued(), 1, "recorded whatever became of it")
}

func TestOwnLogger(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	h := setup(t, pluginstest.Options{Logger: slog.New(slog.NewTextHandler(&b, nil))})
	h.Logger().Info("hello")
	require.Contains(t, b.String(), "msg=hello component=plugin plugin=rec")
	require.Empty(t, h.Logs())
}

// By default Host.Redis is the host's own Redis: it serves until RedisDown,
// then every call fails, as the runtime's shared client does during an
// outage (it has no fallback).
func TestHostRedisFollowsTheOutageSwitch(t *testing.T) {
	t.Parallel()
	h := pluginstest.NewHost(t, pluginstest.Options{})
	ctx := context.Background()
	require.NoError(t, h.Redis().Set(ctx, "test:k", "v", 0).Err())
	h.RedisDown()
	begin := time.Now()
	require.Error(t, h.Redis().Get(ctx, "test:k").Err())
	require.Less(t, time.Since(begin), 2*time.Second, "a call fails within the client's timeouts")
	h.RedisUp()
	require.Eventually(t, func() bool { return h.Redis().Ping(ctx).Err() == nil }, 5*time.Second, 10*time.Millisecond)

	own := redis.NewClient(&redis.Options{Addr: "127.0.0.1:0"})
	defer own.Close()
	require.Same(t, own, pluginstest.NewHost(t, pluginstest.Options{Redis: own}).Redis())
}

// badRegistrar registers what its fields say, in Provision.
type badRegistrar struct {
	taskType string
	fn       asynq.HandlerFunc
}

func (*badRegistrar) PluginInfo() plugins.Info {
	return plugins.Info{ID: "bad", New: func() plugins.Plugin { return &badRegistrar{} }}
}

func (b *badRegistrar) Provision(_ context.Context, h plugins.Host) error {
	h.HandleFunc(b.taskType, b.fn)
	return nil
}

// TestRefusesEmptyTypeAndNilHandler: the test host is the runtime's host,
// so it refuses what the runtime refuses (see TestHostRefusesBadRegistrations
// at the module root), with the same clear errors rather than a panic.
func TestRefusesEmptyTypeAndNilHandler(t *testing.T) {
	t.Parallel()
	ok := func(context.Context, *asynq.Task) error { return nil }
	for _, tc := range []struct {
		p    *badRegistrar
		want string
	}{
		{&badRegistrar{taskType: "", fn: ok}, "HandleFunc with an empty task type"},
		{&badRegistrar{taskType: "bad:nil", fn: nil}, `HandleFunc "bad:nil" with a nil handler`},
	} {
		h := pluginstest.NewHost(t, pluginstest.Options{ID: "bad"})
		require.ErrorContains(t, h.Provision(t.Context(), tc.p), tc.want)
		require.Empty(t, h.TaskTypes())
	}
}
