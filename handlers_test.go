package taskhost_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/health"
	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/plugins"
)

// u16Defaults handles u16:far, whose default queue the worker may not serve.
type u16Defaults struct{}

func (u16Defaults) PluginInfo() plugins.Info {
	return plugins.Info{ID: "u16-defaults", New: func() plugins.Plugin { return u16Defaults{} }}
}

func (u16Defaults) Provision(_ context.Context, h plugins.Host) error {
	h.HandleFunc("u16:far", func(context.Context, *asynq.Task) error { return nil })
	h.TaskDefaults("u16:far", asynq.Queue("far"))
	return nil
}

func init() { plugins.Register(u16Defaults{}) }

// TestNoHandlersIsLoud: a worker with no handler says so at start and in
// /healthz, with how to enable the compiled-in plugins.
func TestNoHandlersIsLoud(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	var log wkLog
	cfg := testConfig(t, s.Addr())
	cfg.Log.Level = "info"
	rt := startRuntime(t, cfg, &log)
	require.Contains(t, log.String(), `level=WARN msg="NO TASK HANDLERS: this worker fetches tasks from default but has no handler for any; each task fails and is retried"`)
	require.Contains(t, log.String(), "a plugin runs when its ID is under plugins: in the config")

	base := "http://" + rt.HealthAddr()
	require.Eventually(t, func() bool {
		_, rep, _ := h5Report(t, base)
		return rep.Status == health.StatusDegraded &&
			strings.HasPrefix(handlersCheckError(rep), "no task handlers: a plugin runs when its ID is under plugins:")
	}, 5*time.Second, 20*time.Millisecond)
}

// handlersCheckError is the error of the runtime.handlers check in rep.
func handlersCheckError(rep health.Report) string {
	for _, c := range rep.Checks {
		if c.Name == "runtime.handlers" {
			return c.Error
		}
	}
	return ""
}

// TestTaskWithoutHandler: a task of a type that no handler serves is
// retried (another worker may have one), logged once per type, and shown
// in /healthz; a type's default queue that the worker does not serve is
// said at start.
func TestTaskWithoutHandler(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	var log wkLog
	cfg := webhookConfig(t, s.Addr())
	cfg.Log.Level = "info"
	cfg.Plugins["u16-defaults"] = map[string]any{}
	rt := startRuntime(t, cfg, &log)
	require.Contains(t, log.String(), `msg="task type's default queue is not served by this worker" component=runtime type=u16:far queue=far worker_queues=default`)
	base := "http://" + rt.HealthAddr()
	h5WaitOK(t, base)

	client, ins := asynqClient(t, s.Addr())
	for _, id := range []string{"nh-1", "nh-2"} {
		_, err := client.Enqueue(asynq.NewTask("nosuch:type", nil), asynq.TaskID(id), asynq.MaxRetry(3))
		require.NoError(t, err)
		info := waitTask(t, ins, "default", id, asynq.TaskStateRetry, 10*time.Second)
		require.Contains(t, info.LastErr, `no handler for the task type in this worker: "nosuch:type"`)
	}
	require.Equal(t, 1, strings.Count(log.String(), `msg="task without a handler in this worker`), log.String())
	require.Contains(t, log.String(), `type=nosuch:type task_types="[u16:far webhook:deliver]"`)

	_, rep, _ := h5Report(t, base)
	require.Equal(t, health.StatusDegraded, rep.Status)
	require.Equal(t, "tasks without a handler in this worker: nosuch:type (2)", handlersCheckError(rep))
	_ = taskhost.ErrNoHandler
}
