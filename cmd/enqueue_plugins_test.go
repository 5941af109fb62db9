package taskhostcmd_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/plugins"
)

// mailer is a plugin compiled into this test binary only: mail:send, with
// task defaults.
type mailer struct{}

func (mailer) PluginInfo() plugins.Info {
	return plugins.Info{ID: "mailer", New: func() plugins.Plugin { return mailer{} }}
}

func (mailer) Provision(_ context.Context, h plugins.Host) error {
	h.HandleFunc("mail:send", func(context.Context, *asynq.Task) error { return nil })
	h.TaskDefaults("mail:send", asynq.Queue("mail"), asynq.MaxRetry(3), asynq.Timeout(time.Minute))
	return nil
}

func init() { plugins.Register(mailer{}) }

func configWith(t *testing.T, url, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte(fmt.Sprintf("redis:\n  url: %s\nworker:\n  max_retry: 7\n%s", url, extra)), 0o600))
	return p
}

// TestEnqueueKnowsTheTaskTypes: `worker enqueue` warns (or, with -strict,
// refuses) a task type that no enabled, compiled-in plugin handles, and
// applies the type's defaults under the flags.
func TestEnqueueKnowsTheTaskTypes(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	enabled := configWith(t, s.URL(), "plugins:\n  mailer: {}\n")
	disabled := configWith(t, s.URL(), "")
	_, ins := queueClients(t, s.Addr())

	t.Run("handled: the type's defaults apply", func(t *testing.T) {
		code, out, errOut := enqueueCLI(t, enabled, "-strict", "-type", "mail:send", "-id", "m-1")
		require.Equal(t, 0, code, errOut)
		require.Empty(t, errOut)
		require.Equal(t, "id=m-1 queue=mail state=pending\n", out)
		info, err := ins.GetTaskInfo("mail", "m-1")
		require.NoError(t, err)
		require.Equal(t, 3, info.MaxRetry, "the type's default, over worker.max_retry")
		require.Equal(t, time.Minute, info.Timeout)

		code, out, errOut = enqueueCLI(t, enabled, "-type", "mail:send", "-id", "m-2", "-queue", "urgent", "-max-retry", "9")
		require.Equal(t, 0, code, errOut)
		require.Equal(t, "id=m-2 queue=urgent state=pending\n", out)
		info, err = ins.GetTaskInfo("urgent", "m-2")
		require.NoError(t, err)
		require.Equal(t, 9, info.MaxRetry, "the flags win")
	})

	t.Run("a typo", func(t *testing.T) {
		code, _, errOut := enqueueCLI(t, enabled, "-strict", "-type", "mail:sned", "-id", "typo-1")
		require.Equal(t, 2, code)
		require.Contains(t, errOut, `no plugin compiled into this binary handles task type "mail:sned" (did you mean mail:send?)`)
		require.Contains(t, errOut, "not enqueued (-strict)")
		_, err := ins.GetTaskInfo("default", "typo-1")
		require.Error(t, err, "not enqueued")

		code, _, errOut = enqueueCLI(t, enabled, "-type", "mail:sned", "-id", "typo-2")
		require.Equal(t, 0, code, "a warning without -strict")
		require.Contains(t, errOut, "worker enqueue: warning: no plugin compiled into this binary handles")
		info, err := ins.GetTaskInfo("default", "typo-2")
		require.NoError(t, err)
		require.Equal(t, 7, info.MaxRetry, "worker.max_retry")
	})

	t.Run("handled by a plugin the config does not enable", func(t *testing.T) {
		code, _, errOut := enqueueCLI(t, disabled, "-strict", "-type", "mail:send")
		require.Equal(t, 2, code)
		require.Contains(t, errOut, `task type "mail:send" is handled by plugin mailer, which is not enabled under plugins: in the config`)
		require.Contains(t, errOut, "plugins: {mailer: {}}")
	})
}
