package taskhost

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
)

// TestAckScriptMatchesAsynq: taskhost's acknowledgement script leaves Redis
// as asynq v0.26.0's own four scripts do, from the same state, whether the
// task is found or not.
func TestAckScriptMatchesAsynq(t *testing.T) {
	t.Parallel()
	const q, id = "q", "mine"
	completed := "asynq:{" + q + "}:completed"
	unique := "asynq:{" + q + "}:unique:{sum}"
	maxTotal := strconv.FormatInt(math.MaxInt64, 10)
	doneArgv := doneArgs(id)
	completeArgv := []any{id, time.Now().Add(90 * 24 * time.Hour).Unix(), time.Now().Add(time.Hour).Unix(), "encoded", int64(math.MaxInt64)}
	completeKeys := []string{activeKey(q), leaseKey(q), completed, taskKey(q, id), processedDayKey(q), processedKey(q)}
	type state struct {
		active  []string // head first
		leased  bool
		total   string // the processed total; "" for none
		unique  string // the unique lock's holder; "" for none
		hasHash bool
	}
	found := state{active: []string{"new", id, "old"}, leased: true, total: "41", unique: id, hasHash: true}
	for _, tc := range []struct {
		name   string
		script string
		keys   []string
		args   []any
		st     state
	}{
		{"done", "doneCmd", doneKeys(q, id), doneArgv, found},
		{"done unique", "doneUniqueCmd", append(doneKeys(q, id), unique), doneArgv, found},
		{"done unique held by another", "doneUniqueCmd", append(doneKeys(q, id), unique), doneArgv,
			state{active: []string{id}, leased: true, total: "1", unique: "other", hasHash: true}},
		{"done at the largest total", "doneCmd", doneKeys(q, id), doneArgv,
			state{active: []string{id}, leased: true, total: maxTotal, hasHash: true}},
		{"done without a total", "doneCmd", doneKeys(q, id), doneArgv, state{active: []string{id}, leased: true, hasHash: true}},
		{"done not active", "doneCmd", doneKeys(q, id), doneArgv, state{active: []string{"other"}, leased: true, hasHash: true}},
		{"done not leased", "doneCmd", doneKeys(q, id), doneArgv, state{active: []string{id}, hasHash: true}},
		{"done without its hash", "doneCmd", doneKeys(q, id), doneArgv, state{active: []string{id}, leased: true}},
		{"complete", "markAsCompleteCmd", completeKeys, completeArgv, found},
		{"complete unique", "markAsCompleteUniqueCmd", append(slices.Clone(completeKeys), unique), completeArgv, found},
		{"complete at the largest total", "markAsCompleteCmd", completeKeys, completeArgv,
			state{active: []string{id}, leased: true, total: maxTotal, hasHash: true}},
		{"complete not active", "markAsCompleteCmd", completeKeys, completeArgv, state{leased: true, hasHash: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			theirs, ours := redistest.Start(t), redistest.Start(t)
			ctx := context.Background()
			run := func(c *redis.Client, script *redis.Script) (string, map[string]string) {
				t.Helper()
				for i := len(tc.st.active) - 1; i >= 0; i-- {
					require.NoError(t, c.LPush(ctx, activeKey(q), tc.st.active[i]).Err())
				}
				require.NoError(t, c.ZAdd(ctx, leaseKey(q), redis.Z{Score: 1e10, Member: "old"}).Err())
				if tc.st.leased {
					require.NoError(t, c.ZAdd(ctx, leaseKey(q), redis.Z{Score: 1e10, Member: id}).Err())
				}
				if tc.st.hasHash {
					require.NoError(t, c.HSet(ctx, taskKey(q, id), "msg", "m", "state", "active").Err())
				}
				if tc.st.total != "" {
					require.NoError(t, c.Set(ctx, processedKey(q), tc.st.total, 0).Err())
				}
				if tc.st.unique != "" {
					require.NoError(t, c.Set(ctx, unique, tc.st.unique, time.Hour).Err())
				}
				res, err := script.Run(ctx, c, tc.keys, tc.args...).Result()
				return fmt.Sprint(res, err), dumpKeys(t, c)
			}
			wantRes, want := run(redistest.Client(t, theirs.Addr()), redis.NewScript(asynqScript(t, tc.script)))
			gotRes, got := run(redistest.Client(t, ours.Addr()), ackScript)
			require.Equal(t, wantRes, gotRes)
			require.Equal(t, want, got)
		})
	}
}

// dumpKeys renders every key of c with its type, value and whether it
// expires.
func dumpKeys(t *testing.T, c *redis.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	keys, err := c.Keys(ctx, "*").Result()
	require.NoError(t, err)
	out := map[string]string{}
	for _, k := range keys {
		typ, err := c.Type(ctx, k).Result()
		require.NoError(t, err)
		var v any
		switch typ {
		case "string":
			v, err = c.Get(ctx, k).Result()
		case "list":
			v, err = c.LRange(ctx, k, 0, -1).Result()
		case "zset":
			v, err = c.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "hash":
			v, err = c.HGetAll(ctx, k).Result()
		}
		require.NoError(t, err)
		ttl, err := c.TTL(ctx, k).Result()
		require.NoError(t, err)
		out[k] = fmt.Sprintf("%s %v expires=%v", typ, v, ttl > 0)
	}
	return out
}

// ackSetup is a fetchClient with an acker on a Redis that the test can
// pause, and one active, leased task "one" of queue "q".
type ackSetup struct {
	srv   *redistest.Server
	c     *redis.Client
	fc    *fetchClient
	acks  *acker
	sent  *countingPipe // the acker's tries by EVALSHA
	logs  *logBuffer
	done  string // asynq's done script, loaded
	lease time.Time
}

func setupAcks(t *testing.T) *ackSetup {
	t.Helper()
	s := setupAcksStopped(t)
	s.acks.start()
	return s
}

// setupAcksStopped is setupAcks with the acker's goroutines not started.
func setupAcksStopped(t *testing.T) *ackSetup {
	t.Helper()
	s := &ackSetup{srv: redistest.Start(t), logs: &logBuffer{}}
	s.c = quickClient(t, s.srv.Addr())
	s.done = loadScript(t, s.c, "doneCmd")
	s.sent = &countingPipe{Cmdable: s.c}
	s.acks = newAcker(s.sent, 4, time.Second, nil, slog.New(slog.NewTextHandler(s.logs, nil)))
	t.Cleanup(s.acks.close)
	s.fc = newFetchClient(s.c, nil, nil, nil, []string{"q"}, time.Second, slog.New(slog.DiscardHandler))
	s.fc.acks = s.acks
	s.lease = time.Now().Add(30 * time.Second)
	ctx := context.Background()
	require.NoError(t, s.c.HSet(ctx, taskKey("q", "one"), "msg", "m", "state", "active").Err())
	require.NoError(t, s.c.LPush(ctx, activeKey("q"), "one").Err())
	require.NoError(t, s.c.ZAdd(ctx, leaseKey("q"), redis.Z{Score: float64(s.lease.Unix()), Member: "one"}).Err())
	return s
}

// ackDone sends asynq's done for "one" as asynq's processor does: with the
// lease as the call's deadline, which it cancels when the call returns.
func (s *ackSetup) ackDone(t *testing.T, lease time.Time) error {
	t.Helper()
	ctx, cancel := context.WithDeadline(context.Background(), lease)
	defer cancel()
	return s.fc.EvalSha(ctx, s.done, doneKeys("q", "one"), doneArgs("one")...).Err()
}

func (s *ackSetup) active(t *testing.T) []string {
	t.Helper()
	ids, err := s.c.LRange(context.Background(), activeKey("q"), 0, -1).Result()
	require.NoError(t, err)
	return ids
}

// The acknowledgement of a success does not hold asynq's slot: asynq's call
// returns at once while Redis does not answer, and the acknowledgement lands
// once Redis answers again, after several failed attempts.
func TestAckDoesNotHoldTheSlot(t *testing.T) {
	t.Parallel()
	s := setupAcks(t)
	s.srv.Pause()
	start := time.Now()
	require.NoError(t, s.ackDone(t, s.lease))
	returned := time.Since(start)
	require.Eventually(t, func() bool { return s.sent.count() >= 3 }, 10*time.Second, 10*time.Millisecond,
		"three tries while Redis does not answer")
	s.srv.Resume()
	require.Less(t, returned, 250*time.Millisecond, "asynq's call waited for Redis")
	require.Eventually(t, func() bool { return len(s.active(t)) == 0 }, 10*time.Second, 20*time.Millisecond,
		"the acknowledgement did not land after the outage")
	n, err := s.c.Exists(context.Background(), taskKey("q", "one")).Result()
	require.NoError(t, err)
	require.Zero(t, n)
	require.Zero(t, s.logs.count("could not acknowledge"), s.logs.String())
}

// taskhost's script is sent with its text after a SCRIPT FLUSH (a restarted
// or failed-over Redis), where asynq's own would need asynq to send it.
func TestAckAfterScriptFlush(t *testing.T) {
	t.Parallel()
	s := setupAcks(t)
	require.NoError(t, s.c.ScriptFlush(context.Background()).Err())
	require.NoError(t, s.ackDone(t, s.lease))
	require.Eventually(t, func() bool { return len(s.active(t)) == 0 }, 10*time.Second, 20*time.Millisecond)
}

// An acknowledgement still held when its lease ends is not sent: the
// recoverer may have given the task to another worker. It is reported.
func TestAckPastTheLeaseIsNotSent(t *testing.T) {
	t.Parallel()
	s := setupAcksStopped(t)
	lease := time.Now().Add(100 * time.Millisecond)
	require.NoError(t, s.ackDone(t, lease))
	require.Eventually(t, func() bool { return time.Now().After(lease) }, 10*time.Second, 10*time.Millisecond)
	s.acks.start()
	require.Eventually(t, func() bool { return s.logs.count("could not acknowledge") == 1 }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, []string{"one"}, s.active(t), "left to lease recovery")
	require.Contains(t, s.logs.String(), "task_id=one")
	require.Contains(t, s.logs.String(), "queue=q")
}

// close delivers what is held before it returns; while Redis does not
// answer, it gives up after its grace, and the task stays to lease recovery.
func TestAckerCloseDrains(t *testing.T) {
	t.Parallel()
	t.Run("Redis answers", func(t *testing.T) {
		t.Parallel()
		s := setupAcks(t)
		s.srv.Pause()
		require.NoError(t, s.ackDone(t, s.lease))
		time.AfterFunc(500*time.Millisecond, s.srv.Resume)
		s.acks.close()
		require.Empty(t, s.active(t), "close returned before the acknowledgement landed")
	})
	t.Run("Redis down", func(t *testing.T) {
		t.Parallel()
		s := setupAcks(t)
		s.acks.grace = 500 * time.Millisecond
		s.srv.Pause()
		require.NoError(t, s.ackDone(t, s.lease))
		start := time.Now()
		s.acks.close()
		waited := time.Since(start)
		require.Error(t, s.ackDone(t, s.lease), "after close the call runs inline")
		s.srv.Resume()
		require.Less(t, waited, 5*time.Second)
		require.Equal(t, []string{"one"}, s.active(t))
		require.Equal(t, 1, s.logs.count("could not acknowledge"), s.logs.String())
	})
}

// The acker holds no more than its capacity; beyond, and without a lease,
// the call runs inline.
func TestAckerBound(t *testing.T) {
	t.Parallel()
	a := newAcker(nil, 2, time.Second, nil, slog.New(slog.DiscardHandler)) // not started: nothing drains
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	keys, args := doneKeys("q", "x"), doneArgs("x")
	require.True(t, a.submit(ctx, keys, args))
	require.True(t, a.submit(ctx, keys, args))
	require.False(t, a.submit(ctx, keys, args), "full")
	require.False(t, a.submit(context.Background(), keys, args), "no lease")
}
