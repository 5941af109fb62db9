package quarantine

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
)

// TestPinnedScripts reads asynq's scripts from the module's source and
// checks the SHA-1s the guard recognizes.
func TestPinnedScripts(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/hibiken/asynq").Output()
	require.NoError(t, err)
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "internal", "rdb", "rdb.go"))
	require.NoError(t, err)
	for name, pinned := range map[string]string{"dequeueCmd": dequeueSHA, "listLeaseExpiredCmd": listLeaseExpiredSHA} {
		m := regexp.MustCompile(`(?s)var ` + name + " = redis.NewScript\\(`(.*?)`\\)").FindSubmatch(src)
		require.NotNil(t, m, name)
		sum := sha1.Sum(m[1])
		require.Equal(t, pinned, hex.EncodeToString(sum[:]),
			"asynq's %s changed (asynq upgrade?): re-check the guarded scripts against it and update the pin", name)
	}
}

type fixture struct {
	srv   *redistest.Server
	rdb   *redis.Client
	g     *Guard
	queue string
}

func setup(t *testing.T, queue string) *fixture {
	t.Helper()
	s := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	return &fixture{srv: s, rdb: rdb, g: New(Options{MaxPayloadBytes: 1024, Logger: discardLogger()}), queue: queue}
}

// enqueue adds a task with asynq's own client and returns its ID.
func (f *fixture) enqueue(t *testing.T, payload []byte, opts ...asynq.Option) string {
	t.Helper()
	info, err := asynq.NewClientFromRedisClient(f.rdb).Enqueue(asynq.NewTask("q:t", payload), append(opts, asynq.Queue(f.queue))...)
	require.NoError(t, err)
	return info.ID
}

func (f *fixture) key(id string) string { return queuePrefix(f.queue) + "t:" + id }

func TestScanQueue(t *testing.T) {
	t.Parallel()
	f := setup(t, "scan")
	ctx := context.Background()
	good := f.enqueue(t, []byte("ok"))
	garbage := f.enqueue(t, []byte("x"))
	f.rdb.HSet(ctx, f.key(garbage), "msg", "\xff\xff")
	nomsg := f.enqueue(t, []byte("x"), asynq.ProcessIn(time.Hour))
	f.rdb.HDel(ctx, f.key(nomsg), "msg")
	nohash := "no-hash"
	f.rdb.ZAdd(ctx, queuePrefix(f.queue)+"retry", redis.Z{Score: 1, Member: nohash})
	big := f.enqueue(t, make([]byte, 70<<10)) // over the msg limit of 1 KiB + Headroom
	other := f.enqueue(t, []byte("x"))
	f.rdb.HSet(ctx, f.key(other), "msg", f.rdb.HGet(ctx, f.key(good), "msg").Val()) // names another id

	var dry []Finding
	require.NoError(t, f.g.ScanQueue(ctx, f.rdb, f.queue, false, func(x Finding) { dry = append(dry, x) }))
	got := map[string]string{}
	for _, x := range dry {
		require.False(t, x.Fixed)
		got[x.ID] = x.State + " " + x.Reason
	}
	require.Equal(t, map[string]string{
		garbage: "pending undecodable", nomsg: "scheduled missing", nohash: "retry missing",
		big: "pending oversized", other: "pending incomplete",
	}, got)
	require.Equal(t, int64(4), f.rdb.LLen(ctx, queuePrefix(f.queue)+"pending").Val(), "a dry run changes nothing")

	var fixed []Finding
	require.NoError(t, f.g.ScanQueue(ctx, f.rdb, f.queue, true, func(x Finding) { fixed = append(fixed, x) }))
	require.Len(t, fixed, 5)
	for _, x := range fixed {
		require.True(t, x.Fixed, "%+v", x)
	}
	require.Equal(t, []string{good}, f.rdb.LRange(ctx, queuePrefix(f.queue)+"pending", 0, -1).Val())
	entries, err := List(ctx, f.rdb, f.queue)
	require.NoError(t, err)
	ids := map[string]string{}
	for _, e := range entries {
		ids[e.ID] = e.From
	}
	require.Equal(t, map[string]string{garbage: "pending", nomsg: "scheduled", nohash: "retry", other: "pending"}, ids)
	info, err := asynq.NewInspectorFromRedisClient(f.rdb).GetTaskInfo(f.queue, big)
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStateArchived, info.State)
	require.Contains(t, info.LastErr, "task message of")

	var again []Finding
	require.NoError(t, f.g.ScanQueue(ctx, f.rdb, f.queue, true, func(x Finding) { again = append(again, x) }))
	require.Empty(t, again, "nothing left")
	require.Equal(t, map[string]int64{f.queue: 4}, f.g.Quarantined())
}

// TestScanStepIsBounded: a periodic step reads at most its budget of tasks
// and resumes where it stopped.
func TestScanStepIsBounded(t *testing.T) {
	t.Parallel()
	f := setup(t, "step")
	ctx := context.Background()
	pipe := f.rdb.Pipeline()
	for i := range 1000 {
		pipe.LPush(ctx, queuePrefix(f.queue)+"pending", fmt.Sprintf("id-%04d", i))
	}
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)
	cur := map[string]*cursor{}
	require.NoError(t, f.g.step(ctx, f.rdb, []string{f.queue}, 400, cur))
	require.Equal(t, int64(400), f.rdb.ZCard(ctx, quarantineKey(f.queue)).Val())
	require.NoError(t, f.g.step(ctx, f.rdb, []string{f.queue}, 400, cur))
	require.NoError(t, f.g.step(ctx, f.rdb, []string{f.queue}, 400, cur))
	require.Equal(t, int64(1000), f.rdb.ZCard(ctx, quarantineKey(f.queue)).Val())
	require.Zero(t, f.rdb.LLen(ctx, queuePrefix(f.queue)+"pending").Val())
}

// TestRunHoldsFleetLock: of two guards on one Redis, one scans a period.
func TestRunHoldsFleetLock(t *testing.T) {
	t.Parallel()
	f := setup(t, "lock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.g.Run(ctx, f.rdb, []string{f.queue}, 200*time.Millisecond, nil) }()
	require.Eventually(t, func() bool { return f.rdb.Exists(ctx, scanLock).Val() == 1 }, 5*time.Second, 10*time.Millisecond)
	ttl := f.rdb.PTTL(ctx, scanLock).Val()
	require.Greater(t, ttl, time.Duration(0))
	require.LessOrEqual(t, ttl, 180*time.Millisecond)
	cancel()
	<-done
}

// Quarantined gives the size of each queue's quarantine as Redis holds it,
// read with each set-aside, so that it counts the tasks other workers set
// aside, and a periodic read that raced a set-aside cannot count it twice
// (it once did: TestPoisonNextToOrphan saw 3 for 2).
func TestQuarantinedCountsWhatRedisHolds(t *testing.T) {
	t.Parallel()
	f := setup(t, "counts")
	ctx := context.Background()
	other := New(Options{MaxPayloadBytes: 1024, Logger: discardLogger()}) // another worker
	for range 2 {
		id := f.enqueue(t, []byte("x"))
		require.NoError(t, f.rdb.HSet(ctx, f.key(id), "msg", "garbage").Err())
	}
	require.NoError(t, other.ScanQueue(ctx, f.rdb, f.queue, true, func(Finding) {}))
	require.Equal(t, map[string]int64{f.queue: 2}, other.Quarantined())
	require.Empty(t, f.g.Quarantined(), "not read yet")

	garbage := f.enqueue(t, []byte("y"))
	require.NoError(t, f.rdb.HSet(ctx, f.key(garbage), "msg", "garbage").Err())
	keys, args := f.dequeueArgs()
	require.ErrorIs(t, f.g.dequeue(ctx, f.rdb, keys, args).Err(), redis.Nil)
	require.Equal(t, map[string]int64{f.queue: 3}, f.g.Quarantined(), "set aside by the dequeue (moveAside)")

	missing := f.enqueue(t, []byte("z"))
	require.NoError(t, f.rdb.HDel(ctx, f.key(missing), "msg").Err())
	require.ErrorIs(t, f.g.dequeue(ctx, f.rdb, keys, args).Err(), redis.Nil)
	require.Equal(t, map[string]int64{f.queue: 4}, f.g.Quarantined(), "set aside inside the dequeue script (report)")

	f.g.refreshCounts(ctx, f.rdb, []string{f.queue})
	require.Equal(t, map[string]int64{f.queue: 4}, f.g.Quarantined())
}
