package pluginstest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/plugins"
	"github.com/taskhost/taskhost/plugins/pluginstest"
)

// fnPlugin provisions with a function.
type fnPlugin func(ctx context.Context, h plugins.Host) error

func (fnPlugin) PluginInfo() plugins.Info                              { return plugins.Info{ID: "fn"} }
func (f fnPlugin) Provision(ctx context.Context, h plugins.Host) error { return f(ctx, h) }

func TestTaskDefaults(t *testing.T) {
	t.Parallel()
	h := setup(t, pluginstest.Options{})
	h.TaskDefaults("rec:slow", asynq.Queue("low"), asynq.Timeout(time.Minute), asynq.MaxRetry(2), asynq.Unique(time.Hour))
	h.TaskDefaults("rec:", asynq.Queue("rec"))
	require.Len(t, h.Defaults("rec:slow"), 4)
	require.Equal(t, []asynq.Option{asynq.Queue("rec")}, h.Defaults("rec:other"), "by prefix, as handlers match")
	require.Empty(t, h.Defaults("other"))

	// Enqueue: the defaults, under what the task and the call set.
	info, err := h.Enqueue(t.Context(), asynq.NewTask("rec:slow", nil))
	require.NoError(t, err)
	require.Equal(t, "low", info.Queue)
	require.Equal(t, 2, info.MaxRetry)
	require.Equal(t, time.Minute, info.Timeout)
	info, err = h.Enqueue(t.Context(), asynq.NewTask("rec:slow", []byte("2"), asynq.Queue("own")), asynq.MaxRetry(7))
	require.NoError(t, err)
	require.Equal(t, "own", info.Queue, "the task's own option wins")
	require.Equal(t, 7, info.MaxRetry, "the call's option wins")
	info, err = h.Enqueue(t.Context(), asynq.NewTask("rec:slow", []byte("3")), asynq.Deadline(time.Now().Add(time.Hour)))
	require.NoError(t, err)
	require.Zero(t, info.Timeout, "a deadline replaces the default timeout")

	// Schedule gets them too.
	_, err = h.Schedule("@every 1m", asynq.NewTask("rec:other", nil))
	require.NoError(t, err)
	require.Equal(t, []asynq.Option{asynq.Queue("rec")}, h.Schedules()[0].Opts)
}

func TestTaskDefaultsRefused(t *testing.T) {
	t.Parallel()
	for name, opt := range map[string]asynq.Option{"task ID": asynq.TaskID("x"), "process in": asynq.ProcessIn(time.Second)} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := setup(t, pluginstest.Options{ID: "fn"})
			err := h.Provision(t.Context(), fnPlugin(func(_ context.Context, h plugins.Host) error {
				h.TaskDefaults("fn:x", opt)
				return nil
			}))
			require.ErrorContains(t, err, "cannot be a default")
		})
	}
}

func TestLimiterErrorsAreConfigErrors(t *testing.T) {
	t.Parallel()
	h := setup(t, pluginstest.Options{ID: "fn", Limits: map[string]string{"api": "5-S"}})

	_, err := h.Limiter("host", "lots")
	require.ErrorIs(t, err, plugins.ErrInvalidConfig)
	wrapped := &plugins.ConfigError{Key: "plugins.fn.rate", Err: err}
	require.Equal(t, `plugins.fn.rate: limiter "host": "lots" is not a rate (<limit>-<S|M|H|D>, e.g. 10-S or 1000-H)`, wrapped.Error(),
		"the plugin's key, once")

	_, err = h.LimiterN("burst", 0, time.Second)
	require.ErrorIs(t, err, plugins.ErrInvalidConfig)
	l, err := h.LimiterN("burst", 3, 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, "fn.burst", l.Name())
	require.Equal(t, 10*time.Second, l.Rate().Period)

	named, err := h.NamedLimiter("api")
	require.NoError(t, err)
	require.Equal(t, int64(5), named.Rate().Limit)
	_, err = h.NamedLimiter("nope")
	require.ErrorIs(t, err, plugins.ErrInvalidConfig)
	require.ErrorContains(t, err, `ratelimit.limits.nope: not configured, and plugin fn needs it`)
}

func TestScheduleErrorRekeyed(t *testing.T) {
	t.Parallel()
	h := setup(t, pluginstest.Options{ID: "fn"})
	_, err := h.Schedule("every minute", asynq.NewTask("fn:tick", nil))
	require.ErrorIs(t, err, plugins.ErrInvalidConfig)
	require.ErrorContains(t, err, "plugins.fn: schedule")
	wrapped := &plugins.ConfigError{Key: "plugins.fn.every", Err: err}
	require.Regexp(t, `^plugins\.fn\.every: schedule "every minute" for fn:tick: .*\(expected five cron fields`, wrapped.Error())
	require.ErrorIs(t, wrapped, plugins.ErrInvalidConfig)
	other := &plugins.ConfigError{Key: "plugins.fn.x", Err: errors.New("plain")}
	require.Equal(t, "plugins.fn.x: plain", other.Error())
}

func TestTaskLoggerOutsideATask(t *testing.T) {
	t.Parallel()
	h := setup(t, pluginstest.Options{})
	h.TaskLogger(t.Context()).Info("hello")
	require.Contains(t, h.Logs(), "msg=hello component=plugin plugin=rec\n")
	plugins.AnnotateTask(t.Context(), "a", 1) // outside a task: nothing happens
}
