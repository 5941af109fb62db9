package taskhost

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"math"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
)

// asynqScripts reads the Lua scripts of the asynq version in go.mod from its
// source in the module cache (internal/rdb/rdb.go), by variable name.
var asynqScripts = sync.OnceValues(func() (map[string]string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/hibiken/asynq").Output()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(strings.TrimSpace(string(out)), "internal", "rdb", "rdb.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		return nil, err
	}
	scripts := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok {
			continue
		}
		for _, sp := range g.Specs {
			vs, ok := sp.(*ast.ValueSpec)
			if !ok || len(vs.Values) != 1 || len(vs.Names) != 1 {
				continue
			}
			call, ok := vs.Values[0].(*ast.CallExpr)
			if !ok || len(call.Args) != 1 {
				continue
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); !ok || sel.Sel.Name != "NewScript" {
				continue
			}
			if lit, ok := call.Args[0].(*ast.BasicLit); ok {
				if s, err := strconv.Unquote(lit.Value); err == nil {
					scripts[vs.Names[0].Name] = s
				}
			}
		}
	}
	return scripts, nil
})

func asynqScript(t *testing.T, name string) string {
	t.Helper()
	scripts, err := asynqScripts()
	require.NoError(t, err, "reading asynq's scripts from the module cache")
	s, ok := scripts[name]
	require.True(t, ok, "asynq has no script %s", name)
	return s
}

// TestAsynqScriptsPinned fails when an asynq upgrade changes a script that
// taskhost recognizes by its SHA-1 (wakeup.go, recoverer.go). Re-read the
// script and what taskhost does with it, then update the constant.
func TestAsynqScriptsPinned(t *testing.T) {
	t.Parallel()
	for name, pinned := range pinnedScripts {
		sum := sha1.Sum([]byte(asynqScript(t, name)))
		require.Equal(t, pinned, hex.EncodeToString(sum[:]),
			"asynq's %s changed (asynq upgrade?): re-check recoverer.go and wakeup.go against it and update the pinned SHA", name)
	}
}

// Keys of asynq v0.26.0's task records (internal/base), for the scripts
// these tests call by hand.
func activeKey(q string) string    { return "asynq:{" + q + "}:active" }
func leaseKey(q string) string     { return "asynq:{" + q + "}:lease" }
func taskKey(q, id string) string  { return "asynq:{" + q + "}:t:" + id }
func processedKey(q string) string { return "asynq:{" + q + "}:processed" }
func processedDayKey(q string) string {
	return processedKey(q) + ":" + time.Now().UTC().Format("2006-01-02")
}
func retryKeyOf(q string) string { return "asynq:{" + q + "}:retry" }
func doneKeys(q, id string) []string {
	return []string{activeKey(q), leaseKey(q), taskKey(q, id), processedDayKey(q), processedKey(q)}
}
func doneArgs(id string) []any {
	return []any{id, time.Now().Add(90 * 24 * time.Hour).Unix(), int64(math.MaxInt64)}
}
func loadScript(t *testing.T, c redis.UniversalClient, name string) string {
	t.Helper()
	sha, err := c.ScriptLoad(context.Background(), asynqScript(t, name)).Result()
	require.NoError(t, err)
	return sha
}

// quickClient fails calls to a paused Redis within a few hundred ms.
func quickClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 300 * time.Millisecond,
		ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond, MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// logBuffer is a goroutine-safe asynq.Logger and io.Writer.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) count(s string) int { return strings.Count(l.String(), s) }

// A task whose handler succeeded (or failed) while Redis did not answer is
// acknowledged once Redis answers again, through the fetchClient: it does
// not stay active until its lease expires and run again (compare
// internal/scaletest's TestAsynqCompletionFailedDuringOutageIsNotResynced,
// the same on a plain client).
//
//   - inline: the call is retried in place, and lands within moments of
//     Redis' return; asynq never sees it fail;
//   - syncer: when the inline retries give up (fetching stopped here),
//     asynq's syncer retries it with its cancelled context, which the
//     fetchClient revives; it lands at the syncer's next round (5 s).
func TestCompletionSurvivesOutage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		fail       bool // the handler fails: the completion is a retry
		stopped    bool // fetching stopped: no inline retries
		within     time.Duration
		syncerLogs int
	}{
		{"inline done", false, false, 3 * time.Second, 0},
		{"inline retry", true, false, 3 * time.Second, 0},
		{"syncer done", false, true, 15 * time.Second, 1},
		{"syncer retry", true, true, 15 * time.Second, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := redistest.Start(t)
			c := quickClient(t, s.Addr())
			halt := make(chan struct{})
			if tc.stopped {
				close(halt)
			}
			fc := newFetchClient(c, nil, nil, halt, []string{"q"}, time.Second, slog.New(slog.DiscardHandler))
			fc.syncBound = time.Second
			logs := &logBuffer{}
			started, release := make(chan struct{}), make(chan struct{})
			srv := asynq.NewServerFromRedisClient(fc, asynq.Config{Concurrency: 1, Queues: map[string]int{"q": 1},
				Logger: asynqLogger{l: slog.New(slog.NewTextHandler(logs, nil))}, LogLevel: asynq.WarnLevel,
				RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Hour }})
			require.NoError(t, srv.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
				close(started)
				<-release
				if tc.fail {
					return context.DeadlineExceeded
				}
				return nil
			})))
			t.Cleanup(srv.Shutdown)
			cl := asynq.NewClientFromRedisClient(c)
			insp := asynq.NewInspectorFromRedisClient(c)
			t.Cleanup(func() { _ = insp.Close() })
			_, err := cl.Enqueue(asynq.NewTask("x", nil), asynq.Queue("q"), asynq.TaskID("one"))
			require.NoError(t, err)
			<-started
			s.Pause()
			close(release)
			if tc.syncerLogs > 0 {
				require.Eventually(t, func() bool { return logs.count("Will retry syncing") == 1 }, 5*time.Second, 20*time.Millisecond)
			} else {
				time.Sleep(time.Second) // the handler has returned; its acknowledgement waits
			}
			s.Resume()
			resumed := time.Now()
			require.Eventually(t, func() bool {
				active, err := insp.ListActiveTasks("q")
				return err == nil && len(active) == 0
			}, tc.within, 20*time.Millisecond, "the completion was not retried after the outage")
			t.Logf("acknowledged %s after Redis answered again", time.Since(resumed).Round(10*time.Millisecond))
			info, err := insp.GetTaskInfo("q", "one")
			if tc.fail {
				require.NoError(t, err)
				require.Equal(t, asynq.TaskStateRetry, info.State)
			} else {
				require.ErrorIs(t, err, asynq.ErrTaskNotFound)
			}
			require.Equal(t, tc.syncerLogs, logs.count("Will retry syncing"), logs.String())
		})
	}
}

// A completion that comes late does no harm:
//   - after the lease it was bounded by has passed, the fetchClient does not
//     send it at all, so a task that the recoverer gave to another worker
//     keeps running there undisturbed;
//   - within the lease, for a task that has moved on (to the retry set here,
//     as the recoverer moves an expired one), asynq's script refuses it with
//     NOT FOUND and changes nothing; the fetchClient reports the retry done,
//     so that asynq's syncer stops retrying it.
func TestLateCompletionDoesNoHarm(t *testing.T) {
	t.Parallel()
	for _, pipelined := range []bool{false, true} {
		t.Run(map[bool]string{false: "direct", true: "autopipeline"}[pipelined], func(t *testing.T) {
			t.Parallel()
			testLateCompletion(t, pipelined)
		})
	}
}

// testLateCompletion is TestLateCompletionDoesNoHarm with the scripts sent
// directly or, as with worker.autopipeline, through go-redis' autopipeliner,
// which runs a command on its own context whatever the caller's says.
func testLateCompletion(t *testing.T, pipelined bool) {
	s := redistest.Start(t)
	c := quickClient(t, s.Addr())
	var pipe redis.Cmdable
	if pipelined {
		pipe = autoPipeliner(c, slog.New(slog.DiscardHandler))
		require.NotNil(t, pipe)
	}
	fc := newFetchClient(c, nil, pipe, nil, []string{"q"}, time.Second, slog.New(slog.DiscardHandler))
	fc.syncBound = time.Second
	done := loadScript(t, c, "doneCmd")
	insp := asynq.NewInspectorFromRedisClient(c)
	t.Cleanup(func() { _ = insp.Close() })
	cl := asynq.NewClientFromRedisClient(c)

	// Worker B runs "one" now (it was recovered from worker A and handed on).
	started, release := make(chan string, 2), make(chan struct{})
	srv := asynq.NewServerFromRedisClient(c, asynq.Config{Concurrency: 2, Queues: map[string]int{"q": 1}, LogLevel: asynq.FatalLevel,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Hour }})
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		started <- id
		if id == "two" {
			return context.DeadlineExceeded // to the retry set
		}
		<-release
		return nil
	})))
	t.Cleanup(srv.Shutdown)
	t.Cleanup(func() { close(release) })
	_, err := cl.Enqueue(asynq.NewTask("x", nil), asynq.Queue("q"), asynq.TaskID("one"))
	require.NoError(t, err)
	require.Equal(t, "one", <-started)

	// Worker A's syncer retries its "done" for "one" after A's lease ended.
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	cancel()
	err = fc.EvalSha(expired, done, doneKeys("q", "one"), doneArgs("one")...).Err()
	require.ErrorIs(t, err, context.DeadlineExceeded, "not sent")
	info, err := insp.GetTaskInfo("q", "one")
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStateActive, info.State, "worker B still runs it")
	n, err := c.ZScore(context.Background(), leaseKey("q"), "one").Result()
	require.NoError(t, err)
	require.Greater(t, n, float64(time.Now().Unix()), "B's lease is intact")

	// "two" failed on B and waits in the retry set; A's "done" for it comes
	// within A's lease: asynq refuses it.
	_, err = cl.Enqueue(asynq.NewTask("x", nil), asynq.Queue("q"), asynq.TaskID("two"))
	require.NoError(t, err)
	require.Equal(t, "two", <-started)
	require.Eventually(t, func() bool {
		info, err := insp.GetTaskInfo("q", "two")
		return err == nil && info.State == asynq.TaskStateRetry
	}, 5*time.Second, 20*time.Millisecond)
	live, cancel := context.WithDeadline(context.Background(), time.Now().Add(20*time.Second))
	cancel() // cancelled, with the lease still ahead: revived and sent
	require.NoError(t, fc.EvalSha(live, done, doneKeys("q", "two"), doneArgs("two")...).Err(),
		"NOT FOUND on a retry counts as done: the syncer drops it")
	fc.syncBound = 0 // the same call as asynq sends it, to see Redis' answer
	require.ErrorContains(t, fc.EvalSha(context.Background(), done, doneKeys("q", "two"), doneArgs("two")...).Err(), "NOT FOUND")
	info, err = insp.GetTaskInfo("q", "two")
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStateRetry, info.State, "unchanged")
	z, err := c.ZCard(context.Background(), retryKeyOf("q")).Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, z)
}

// Only the first fetcher's recoverer works: an extra fetcher's client
// answers the expired-lease listing with nothing, without asking Redis.
func TestExtraFetcherDoesNotRecover(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c := quickClient(t, s.Addr())
	ctx := context.Background()
	list := loadScript(t, c, "listLeaseExpiredCmd")
	// A task whose lease expired long ago.
	require.NoError(t, c.HSet(ctx, taskKey("q", "orphan"), "msg", "m", "state", "active").Err())
	require.NoError(t, c.ZAdd(ctx, leaseKey("q"), redis.Z{Score: float64(time.Now().Add(-time.Hour).Unix()), Member: "orphan"}).Err())
	args := []any{time.Now().Add(-30 * time.Second).Unix(), "asynq:{q}:t:"}

	first := newFetchClient(c, nil, nil, nil, []string{"q"}, time.Second, slog.New(slog.DiscardHandler))
	extra := newFetchClient(c, nil, nil, nil, []string{"q"}, time.Second, slog.New(slog.DiscardHandler))
	extra.notRecoverer = true
	got, err := first.EvalSha(ctx, list, []string{leaseKey("q")}, args...).StringSlice()
	require.NoError(t, err)
	require.Equal(t, []string{"m"}, got)
	got, err = extra.EvalSha(ctx, list, []string{leaseKey("q")}, args...).StringSlice()
	require.NoError(t, err)
	require.Empty(t, got)
	got, err = extra.Eval(ctx, asynqScript(t, "listLeaseExpiredCmd"), []string{leaseKey("q")}, args...).StringSlice()
	require.NoError(t, err)
	require.Empty(t, got, "after NOSCRIPT too")
	require.NoError(t, extra.EvalSha(ctx, reclaimAggregationSHA, []string{"asynq:{q}:aggregation_sets"}, time.Now().Unix()).Err())
}

// TestCompletionsBypassTheGuard: the scripts that end a task go to the
// fetcher's completer, not through the queue guard's wrapper, which has no
// business with them and whose frames made the runtime grow every task
// goroutine's stack (docs/benchmarks.md, "Two fixes from that profile").
// Other scripts do not go to the completer.
func TestCompletionsBypassTheGuard(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c := quickClient(t, s.Addr())
	completer := &countingPipe{Cmdable: c}
	fc := newFetchClient(c, nil, nil, nil, []string{"q"}, time.Second, slog.New(slog.DiscardHandler))
	fc.completer = completer
	done := loadScript(t, c, "doneCmd")
	reclaim := loadScript(t, c, "reclaimStateAggregationSetsCmd")
	ctx := context.Background()

	_ = fc.EvalSha(ctx, done, doneKeys("q", "x"), doneArgs("x")...).Err() // NOT FOUND: no such task
	require.Equal(t, []string{done}, completer.shas)
	require.NoError(t, fc.EvalSha(ctx, reclaim, []string{"asynq:{q}:aggregation_sets"}, time.Now().Unix()).Err())
	require.Equal(t, []string{done}, completer.shas, "not a completion: through the fetcher's own client")
}
