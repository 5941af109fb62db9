package scaletest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestAsyncReplicationLosesAckedEnqueue shows, without relying on timing,
// what asynchronous replication means at failover: an enqueue that the
// master acknowledged but had not sent to the replica is gone after the
// replica is promoted. WAIT tells the writer that the write reached no
// replica, and min-replicas-to-write makes the master refuse the write.
func TestAsyncReplicationLosesAckedEnqueue(t *testing.T) {
	t.Parallel()
	env := setupSentinel(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := asynq.NewClientFromRedisClient(env.client)
	t.Cleanup(func() { _ = cl.Close() })
	master := redis.NewClient(&redis.Options{Addr: env.sentinel.Master().Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = master.Close() })
	replica := redis.NewClient(&redis.Options{Addr: env.sentinel.Replica().Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = replica.Close() })
	enqueue := func(id string) error {
		_, err := cl.EnqueueContext(ctx, asynq.NewTask("x", nil), asynq.Queue("repl"), asynq.TaskID(id))
		return err
	}

	require.NoError(t, enqueue("replicated"))
	require.Eventually(t, func() bool {
		n, err := replica.Exists(ctx, "asynq:{repl}:t:replicated").Result()
		return err == nil && n == 1
	}, 5*time.Second, 10*time.Millisecond, "the first task reaches the replica")

	// Cut replication: freeze the replica, then drop its link on the master.
	env.sentinel.Replica().Pause()
	require.NoError(t, master.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err())
	require.Eventually(t, func() bool {
		info, err := master.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "connected_slaves:0")
	}, 5*time.Second, 10*time.Millisecond)

	require.NoError(t, enqueue("acked-not-replicated"), "the master acknowledges the write")
	conn := master.Conn()
	require.NoError(t, conn.Set(ctx, "probe", "1", 0).Err())
	n, err := conn.Wait(ctx, 1, 100*time.Millisecond).Result()
	_ = conn.Close()
	require.NoError(t, err)
	require.Zero(t, n, "WAIT, on the writing connection, reports that no replica has the write")

	require.NoError(t, master.ConfigSet(ctx, "min-replicas-to-write", "1").Err())
	err = enqueue("refused")
	require.ErrorContains(t, err, "NOREPLICAS", "min-replicas-to-write refuses writes no replica can take")

	env.sentinel.KillMaster()
	env.sentinel.Replica().Resume()
	_, err = env.sentinel.WaitFailover(ctx)
	require.NoError(t, err)

	insp := asynq.NewInspectorFromRedisClient(env.client)
	t.Cleanup(func() { _ = insp.Close() })
	require.Eventually(t, func() bool {
		_, err := insp.GetTaskInfo("repl", "replicated")
		return err == nil
	}, 10*time.Second, 50*time.Millisecond, "the replicated task survives the failover")
	_, err = insp.GetTaskInfo("repl", "acked-not-replicated")
	require.ErrorIs(t, err, asynq.ErrTaskNotFound, "the acknowledged but unreplicated task is lost")
	_, err = insp.GetTaskInfo("repl", "refused")
	require.ErrorIs(t, err, asynq.ErrTaskNotFound)
}
