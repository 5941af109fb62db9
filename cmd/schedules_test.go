package taskhostcmd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Each kind of bad schedules entry stops the worker with exit code 2 and a
// message naming the key, both with -check-config and on a plain start
// (which checks the task type once the plugins are provisioned, before it
// serves). A payload is never echoed: it may hold a secret.
func TestWorkerSchedulesConfigErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, entry, key string }{
		{"bad cron", `{cron: "every minute", type: "webhook:deliver"}`, "schedules.r.cron"},
		{"unknown option", `{cron: "@hourly", type: "webhook:deliver", options: {retries: 3}}`, "schedules.r.options.retries: unknown key"},
		{"payload not JSON", `{cron: "@hourly", type: "webhook:deliver", payload: '{"token": "sekret-9"'}`, "schedules.r.payload: is not valid JSON"},
		{"unhandled type", `{cron: "@hourly", type: "report:send"}`, "is not handled by any configured plugin (expected one of: webhook:deliver)"},
		{"unique too long", `{cron: "@every 1m", type: "webhook:deliver", options: {unique: 2m}}`, "schedules.r.options.unique"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "config.yaml")
			body := "plugins:\n  webhook: {}\nschedules:\n  r: " + tc.entry + "\n"
			require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
			for _, args := range [][]string{{"-config", path, "-check-config"}, {"-config", path}} {
				code, stdout, stderr := runWorker(t, []string{"REDIS_URL=redis://127.0.0.1:1/0"}, args...)
				out := stdout + stderr
				require.Equal(t, 2, code, "%v: %s", args, out)
				require.Contains(t, out, tc.key, "%v", args)
				require.Contains(t, out, "schedules.r.", "%v", args)
				require.NotContains(t, out, "sekret-9")
				require.False(t, strings.Contains(out, "panic"), out)
			}
		})
	}
}
