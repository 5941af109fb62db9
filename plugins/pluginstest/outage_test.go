package pluginstest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/plugins/pluginstest"
	"github.com/taskhost/taskhost/ratelimit"
)

func setupGreeter(t *testing.T) *pluginstest.Host {
	t.Helper()
	h := pluginstest.NewHost(t, pluginstest.Options{ID: "greeter", Limits: map[string]string{"outbound": "100-S"}})
	require.NoError(t, h.Provision(t.Context(), &greeter{}))
	return h
}

// TestGreeterOutage is the outage test of docs/plugins.md.
func TestGreeterOutage(t *testing.T) {
	t.Parallel()
	h := setupGreeter(t)
	h.RedisDown()
	require.NoError(t, h.Run(t.Context(), "greet:send", []byte(`{"to":"ada"}`)))
	var limited *ratelimit.LimitedError // the limiter counts in memory meanwhile
	require.ErrorAs(t, h.Run(t.Context(), "greet:send", []byte(`{"to":"ada"}`)), &limited)
	require.Equal(t, 1, h.Held(), "the audit task waits in the outbox")
	h.RedisUp()
	require.Zero(t, h.Held())
	pending, err := h.Inspector().ListPendingTasks("greetings")
	require.NoError(t, err)
	require.Len(t, pending, 1, "delivered to its default queue")
	require.NoError(t, h.Run(t.Context(), "greet:send", []byte(`{"to":"ada"}`)), "counting is back on Redis")
}

// TestGreeterOutagePaths checks, around the short test above, that each
// component took its fallback path and came back.
func TestGreeterOutagePaths(t *testing.T) {
	t.Parallel()
	h := setupGreeter(t)
	ctx := t.Context()
	require.True(t, h.RedisIsUp())
	require.NoError(t, h.Cache().Set(ctx, "before", []byte("redis"), time.Hour))

	h.RedisDown()
	h.RedisDown() // twice is fine
	require.False(t, h.RedisIsUp())
	require.NoError(t, h.Run(ctx, "greet:send", []byte(`{"to":"bob"}`)))
	v, err := h.Cache().Get(ctx, "last")
	require.NoError(t, err)
	require.Equal(t, "bob", string(v), "written to memory")
	_, err = h.Cache().Get(ctx, "before")
	require.Error(t, err, "Redis's entries are out of reach")
	require.Equal(t, 1, h.Held())
	require.Len(t, h.Enqueued(), 1)
	require.Equal(t, "greet:audit", h.Enqueued()[0].Type())

	h.RedisUp()
	h.RedisUp()
	v, err = h.Cache().Get(ctx, "before")
	require.NoError(t, err)
	require.Equal(t, "redis", string(v), "Redis kept its data")
	_, err = h.Cache().Get(ctx, "last")
	require.Error(t, err, "what was written to memory is dropped")

	tasks, err := h.Inspector().ListPendingTasks("greetings")
	require.NoError(t, err)
	require.Len(t, tasks, 1)
	require.Equal(t, 3, tasks[0].MaxRetry, "the type's defaults")

	logs := h.Logs()
	for _, want := range []string{
		`msg="pluginstest: redis down"`, `msg="cache switched to memory`, `msg="rate limiting moved to memory`,
		`msg="holding enqueues in the outbox`, `msg="pluginstest: redis up"`, `msg="cache switched to Redis`,
	} {
		require.Contains(t, logs, want)
	}
	require.Equal(t, 1.0, mustCounter(t, h))
}

func mustCounter(t *testing.T, h *pluginstest.Host) float64 {
	t.Helper()
	fams, err := h.Gatherer().Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() == "greeter_sent_total" {
			m := f.GetMetric()[0]
			require.Equal(t, "plugin", m.GetLabel()[0].GetName())
			require.Equal(t, "greeter", m.GetLabel()[0].GetValue())
			return m.GetCounter().GetValue()
		}
	}
	t.Fatal("greeter_sent_total not registered")
	return 0
}

func TestRunTaskWithIDAndRetry(t *testing.T) {
	t.Parallel()
	h := setupGreeter(t)
	err := h.Run(t.Context(), "greet:send", []byte(`{"to":"cy"}`), asynq.TaskID("t-42"), pluginstest.Retried(2))
	require.NoError(t, err)
	var line string
	for _, l := range strings.Split(h.Logs(), "\n") {
		if strings.Contains(l, `msg=greeted`) {
			line = l
		}
	}
	require.Contains(t, line, "task_id=t-42 type=greet:send queue=greetings retry=2 to=cy",
		"the task logger, on the type's default queue")
	require.Contains(t, h.Logs(), `msg="task done" component=task task_id=t-42 type=greet:send queue=greetings retry=2`)
	require.Contains(t, h.Logs(), "to=cy", "the handler's annotation")

	err = h.Run(t.Context(), "greet:send", []byte(`{"to":"cy"}`), pluginstest.Retried(4))
	require.ErrorContains(t, err, "Retried(4) is more than the task's max retry (3)")
}
