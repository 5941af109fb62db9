package taskhost

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/config"
)

// TestBoundsEveryNumber checks each bound at both edges and one step past
// each: the edges are accepted, the steps past are a problem at the key that
// names the range. It also checks that every number that sizes memory, CPU
// or retries has a bound.
func TestBoundsEveryNumber(t *testing.T) {
	t.Parallel()
	// Numbers that need no bound: a keep-alive period sizes nothing.
	unbounded := map[string]bool{"redis.keep_alive": true}
	for _, l := range configSchema.leaves {
		switch l.typ.Kind() {
		case reflect.Int, reflect.Int64:
			if _, ok := boundOf(l.path); !ok && !unbounded[l.path] {
				t.Errorf("%s is a number without a bound", l.path)
			}
		}
	}
	for _, b := range bounds {
		t.Run(b.key, func(t *testing.T) {
			t.Parallel()
			for _, tc := range []struct {
				val int64
				ok  bool
			}{{b.lo, true}, {b.hi, true}, {b.lo - 1, false}, {b.hi + 1, false}} {
				c := DefaultConfig()
				// Keep the relations between keys true at the edges.
				c.Redis.PoolSize, c.Redis.MinIdleConns = 1000, 0
				c.Redis.BackoffMin, c.Redis.BackoffMax = 10*time.Millisecond, 10*time.Minute
				c.Worker.RetryBaseDelay, c.Worker.RetryMaxDelay = 10*time.Millisecond, 720*time.Hour
				c.Worker.MaxPayloadBytes, c.Outbox.MaxBytes = 1024, 16<<30
				f, ok := fieldAt(reflect.ValueOf(&c).Elem(), b.key)
				require.True(t, ok)
				f.SetInt(tc.val)
				err := c.Validate()
				if tc.ok {
					require.NoError(t, err, "%s = %d", b.key, tc.val)
					continue
				}
				shown := fmt.Sprint(tc.val)
				if b.noun == "" {
					shown = time.Duration(tc.val).String()
				}
				requireProblem(t, err, b.key, shown+" is not "+b.form())
			}
		})
	}
}

func TestBoundForms(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{
		"redis.pool_size":          "a pool size (integer 1-1000)",
		"redis.ping_interval":      "a duration with a unit, from 100ms to 1m",
		"worker.task_timeout":      "a duration with a unit, from 10ms to 168h",
		"worker.max_payload_bytes": "a size in bytes (integer 1024-67108864, 1 KiB to 64 MiB)",
		"redis.max_retries":        "a retry count (integer -1-10; -1 disables retries, 0 means go-redis' default of 3)",
	} {
		b, ok := boundOf(key)
		require.True(t, ok, key)
		require.Equal(t, want, b.form(), key)
	}
}

// TestLoadBoundedFromEnvAndFlags: the cases of the issue, as a user meets them.
func TestLoadBoundedFromEnvAndFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  []string
		key  string
		want string
	}{
		{[]string{"REDIS_POOL_SIZE=100000000"}, "redis.pool_size", "100000000 is not a pool size (integer 1-1000) (from REDIS_POOL_SIZE)"},
		{[]string{"WORKER_QUEUES=default=5000000"}, "worker.queues.default", "5000000 is not a queue weight (integer 1-1000"},
		{[]string{"WORKER_MAX_RETRY=2147483648"}, "worker.max_retry", "2147483648 is not a retry count (integer 0-1000)"},
		{[]string{"REDIS_PING_INTERVAL=1ns"}, "redis.ping_interval", "1ns is not a duration with a unit, from 100ms to 1m"},
		{[]string{"OUTBOX_MAX_TASKS=0"}, "outbox.max_tasks", "0 is not a task count (integer 1-10000000)"},
		{[]string{"OUTBOX_DRAIN_RATE=1e12"}, "outbox.drain_rate", "is not a rate in tasks per second (number > 0 and <= 1000000)"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			t.Parallel()
			_, err := LoadConfig(LoadOptions{Environ: tt.env})
			requireProblem(t, err, tt.key, tt.want)
		})
	}
}

func TestLoadFileTooBig(t *testing.T) {
	t.Parallel()
	b := setup(t)
	big := b.file(t, "# "+strings.Repeat("x", config.MaxFileBytes)+"\n")
	for _, path := range []string{big, "/dev/zero"} {
		if _, err := os.Stat(path); err != nil {
			continue
		}
		start := time.Now()
		_, err := LoadConfig(LoadOptions{Path: path, PathExplicit: true, Environ: noEnv})
		require.ErrorIs(t, err, ErrInvalidConfig)
		require.Contains(t, err.Error(), "larger than 1048576 bytes (1 MiB), the limit of a config file")
		require.Less(t, time.Since(start), 5*time.Second)
	}
}

func TestLoadTooManyKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var body strings.Builder
	body.WriteString("plugins:\n  canary:\n")
	for i := range 200000 {
		fmt.Fprintf(&body, "    k%d: 1\n", i)
		if body.Len() > config.MaxFileBytes-64 {
			break
		}
	}
	start := time.Now()
	_, err := LoadConfig(LoadOptions{Path: b.file(t, body.String()), PathExplicit: true, Environ: noEnv})
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.Contains(t, err.Error(), "more than 10000 keys")
	require.Less(t, time.Since(start), 5*time.Second, "a config at the size limit is refused quickly")

	// From the environment too.
	var pairs []string
	for i := range config.MaxKeys + 1 {
		pairs = append(pairs, fmt.Sprintf("q%d=1", i))
	}
	_, err = LoadConfig(LoadOptions{Environ: []string{"RATELIMIT_TASKS=" + strings.Join(pairs, ",")}})
	requireProblem(t, err, "ratelimit.tasks", "has more than 10000 entries")
}

// TestURLErrorsHoldNoPartOfASecret: a password with an unencoded "@", "/",
// "?" or "#" lands in the host, path or query of the parsed URL; no message
// may quote any of them.
func TestURLErrorsHoldNoPartOfASecret(t *testing.T) {
	t.Parallel()
	const pass = "p4ss/w0rd@x?y#z:99999"
	fragments := []string{"p4ss", "w0rd", "x?y", "y#z", "99999", "w0rd@"}
	for _, raw := range []string{
		"redis://user:" + pass + "@127.0.0.1:6379/0",
		"redis://:" + pass + "@127.0.0.1:6379",
		"redis://user:p4ss/w0rd@127.0.0.1:6379/0",
		"redis://:p4ss%zzw0rd@127.0.0.1:6379/0",
		"http://user:p4ss@w0rd@127.0.0.1:6379/0",
		"redis://127.0.0.1:6379/0?w0rd=p4ss",
		"redis://127.0.0.1:6379/0?dial_timeout=p4ss",
	} {
		_, err := LoadConfig(LoadOptions{Environ: []string{"REDIS_URL=" + raw}})
		require.ErrorIs(t, err, ErrInvalidConfig, raw)
		for _, f := range fragments {
			require.NotContains(t, err.Error(), f, raw)
		}
		require.Contains(t, err.Error(), "redis.url", raw)
	}
}
