package taskhostcmd_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	taskhostcmd "github.com/taskhost/taskhost/cmd"
	"github.com/taskhost/taskhost/internal/redistest"
)

// configFile writes a config file that points at the Redis at url. The
// command reads the real environment too; the file keeps the test's settings
// explicit.
func configFile(t *testing.T, url string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte(fmt.Sprintf("redis:\n  url: %s\nworker:\n  max_retry: 7\n", url)), 0o600))
	return p
}

// enqueueCLI runs `worker enqueue -config cfg args...` in process.
func enqueueCLI(t *testing.T, cfg string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := taskhostcmd.Run(context.Background(), append([]string{"enqueue", "-config", cfg}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestEnqueueCommand(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	cfg := configFile(t, s.URL())
	_, ins := queueClients(t, s.Addr())

	t.Run("all options", func(t *testing.T) {
		before := time.Now()
		code, out, errOut := enqueueCLI(t, cfg, "-type", "report:build", "-payload", `{"month":"2026-01"}`,
			"-queue", "reports", "-in", "1h", "-id", "rep-1", "-unique", "2h", "-max-retry", "4")
		require.Equal(t, 0, code, errOut)
		require.Equal(t, "id=rep-1 queue=reports state=scheduled\n", out)

		info, err := ins.GetTaskInfo("reports", "rep-1")
		require.NoError(t, err)
		require.Equal(t, "report:build", info.Type)
		require.JSONEq(t, `{"month":"2026-01"}`, string(info.Payload))
		require.Equal(t, asynq.TaskStateScheduled, info.State)
		require.Equal(t, 4, info.MaxRetry)
		require.WithinRange(t, info.NextProcessAt, before.Add(time.Hour-time.Second), time.Now().Add(time.Hour+time.Second))

		// -unique: the same task under another ID is refused while the TTL runs.
		code, _, errOut = enqueueCLI(t, cfg, "-type", "report:build", "-payload", `{"month":"2026-01"}`,
			"-queue", "reports", "-id", "rep-2", "-unique", "2h")
		require.Equal(t, 1, code)
		require.Contains(t, errOut, asynq.ErrDuplicateTask.Error())

		// A duplicate -id is asynq's conflict.
		code, _, errOut = enqueueCLI(t, cfg, "-type", "report:other", "-queue", "reports", "-id", "rep-1")
		require.Equal(t, 1, code)
		require.Contains(t, errOut, asynq.ErrTaskIDConflict.Error())
		require.Contains(t, errOut, "rep-1")
	})

	t.Run("at", func(t *testing.T) {
		at := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
		code, out, errOut := enqueueCLI(t, cfg, "-type", "t:at", "-id", "at-1", "-at", at.Format(time.RFC3339))
		require.Equal(t, 0, code, errOut)
		require.Equal(t, "id=at-1 queue=default state=scheduled\n", out)
		info, err := ins.GetTaskInfo("default", "at-1")
		require.NoError(t, err)
		require.True(t, info.NextProcessAt.Equal(at), "process at %s, want %s", info.NextProcessAt, at)
	})

	t.Run("defaults", func(t *testing.T) {
		code, out, errOut := enqueueCLI(t, cfg, "-type", "t:plain")
		require.Equal(t, 0, code, errOut)
		var id, queue, state string
		_, err := fmt.Sscanf(out, "id=%s queue=%s state=%s", &id, &queue, &state)
		require.NoError(t, err, out)
		require.NotEmpty(t, id, "a generated ID")
		require.Equal(t, "default", queue)
		require.Equal(t, "pending", state)
		info, err := ins.GetTaskInfo("default", id)
		require.NoError(t, err)
		require.Equal(t, asynq.TaskStatePending, info.State)
		require.Equal(t, "{}", string(info.Payload))
		require.Equal(t, 7, info.MaxRetry, "worker.max_retry from the config")
	})
}

func TestEnqueueUsageErrors(t *testing.T) {
	t.Parallel()
	cfg := configFile(t, "redis://"+redistest.ClosedAddr(t)+"/0")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad JSON", []string{"-type", "t", "-payload", `{"a":`}, "-payload is not valid JSON"},
		{"unknown flag", []string{"-type", "t", "-priority", "high"}, "flag provided but not defined: -priority"},
		{"no type", []string{"-payload", `{}`}, "-type is required"},
		{"bad -at", []string{"-type", "t", "-at", "tomorrow"}, "is not an RFC 3339 time"},
		{"-in and -at", []string{"-type", "t", "-in", "1m", "-at", "2030-01-01T00:00:00Z"}, "cannot both be set"},
		{"bad duration", []string{"-type", "t", "-in", "soon"}, "invalid value"},
		{"negative max-retry", []string{"-type", "t", "-max-retry", "-5"}, "-max-retry: -5 is not a retry count (integer 0-1000)"},
		{"huge max-retry", []string{"-type", "t", "-max-retry", "2147483648"}, "-max-retry: 2147483648 is not a retry count (integer 0-1000)"},
		{"payload over the bound", []string{"-type", "t", "-payload", `"` + strings.Repeat("x", 1<<20) + `"`},
			"-payload: payload too large: task t has a payload of 1048578 bytes, more than worker.max_payload_bytes (1048576)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := enqueueCLI(t, cfg, tc.args...)
			require.Equal(t, 2, code, errOut)
			require.Empty(t, out)
			require.Contains(t, errOut, tc.want)
		})
	}
}

func TestEnqueueRedisDownFailsFast(t *testing.T) {
	t.Parallel()
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		addr := redistest.ClosedAddr(t)
		cfg := configFile(t, "redis://:hunter2@"+addr+"/0")
		begin := time.Now()
		code, out, errOut := enqueueCLI(t, cfg, "-type", "t", "-payload", `{}`)
		errOut = strings.Join(slices.DeleteFunc(strings.SplitAfter(errOut, "\n"), func(l string) bool {
			return strings.HasPrefix(l, "worker enqueue: warning: no plugin") // t is no plugin's type
		}), "")
		require.Less(t, time.Since(begin), 2*time.Second)
		require.Equal(t, 1, code)
		require.Regexp(t, `^id=[0-9a-f-]{36}\n$`, out, "the ID is printed before the task is sent")
		require.Contains(t, errOut, "is unreachable, the task (id "+strings.TrimSpace(strings.TrimPrefix(out, "id="))+") was not enqueued")
		require.Contains(t, errOut, addr)
		require.NotContains(t, errOut, "hunter2", "no password in the message")
		require.Equal(t, 1, strings.Count(errOut, "\n"), "one line, no go-redis noise: %s", errOut)
	})
	t.Run("frozen", func(t *testing.T) {
		t.Parallel()
		s := redistest.Start(t)
		cfg := configFile(t, s.URL())
		s.Pause() // accepts connections, answers nothing
		t.Cleanup(s.Resume)
		begin := time.Now()
		code, _, errOut := enqueueCLI(t, cfg, "-type", "t")
		require.Less(t, time.Since(begin), 2*time.Second)
		require.Equal(t, 1, code, "the handshake timed out before the task was sent: %s", errOut)
		require.Contains(t, errOut, "was not enqueued")
	})
}

// The binary reads the environment, as in a container.
func TestEnqueueBinaryFromEnvironment(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	_, ins := queueClients(t, s.Addr())
	code, out, errOut := runWorker(t, []string{"REDIS_URL=" + s.URL()},
		"enqueue", "-type", "t:env", "-payload", `{"x":[1,2]}`, "-queue", "low", "-id", "env-1")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "id=env-1 queue=low state=pending\n", out)
	info, err := ins.GetTaskInfo("low", "env-1")
	require.NoError(t, err)
	require.JSONEq(t, `{"x":[1,2]}`, string(info.Payload))
}
