package taskhostcmd_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	taskhostcmd "github.com/taskhost/taskhost/cmd"
	"github.com/taskhost/taskhost/internal/redistest"
)

func doctorCLI(t *testing.T, cfg string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := taskhostcmd.Run(context.Background(), append([]string{"doctor", "-config", cfg}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestDoctor: a corrupted hash and one without msg in a queue that no
// worker runs. -dry-run lists them and changes nothing (exit 1); a run
// moves them to the quarantine (exit 0) and lists it; then all is clean.
func TestDoctor(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	c := asynq.NewClientFromRedisClient(rdb)
	var ids []string
	for range 3 {
		info, err := c.Enqueue(asynq.NewTask("t:doc", []byte("{}")), asynq.Queue("docq"))
		require.NoError(t, err)
		ids = append(ids, info.ID)
	}
	require.NoError(t, rdb.HSet(ctx, "asynq:{docq}:t:"+ids[0], "msg", "garbage").Err())
	require.NoError(t, rdb.HDel(ctx, "asynq:{docq}:t:"+ids[1], "msg").Err())
	cfg := configFile(t, s.URL())

	code, out, errOut := doctorCLI(t, cfg, "-dry-run")
	require.Equal(t, 1, code, errOut)
	require.Contains(t, out, "poison queue=docq id="+ids[0]+" state=pending problem=undecodable")
	require.Contains(t, out, "poison queue=docq id="+ids[1]+" state=pending problem=missing")
	require.Contains(t, out, "action=none (dry run)")
	require.Contains(t, out, "doctor: queues=2 poison=2 repaired=0 left=2 quarantined=0")
	require.Equal(t, int64(3), rdb.LLen(ctx, "asynq:{docq}:pending").Val())

	code, out, errOut = doctorCLI(t, cfg)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, 2, strings.Count(out, "action=quarantined"), out)
	require.Contains(t, out, "quarantined queue=docq id="+ids[0]+" from=pending")
	require.Contains(t, out, "key=taskhost:quarantine:{docq}:"+ids[0])
	require.Contains(t, out, "doctor: queues=2 poison=2 repaired=2 left=0 quarantined=2")
	require.Equal(t, []string{ids[2]}, rdb.LRange(ctx, "asynq:{docq}:pending", 0, -1).Val())

	code, out, _ = doctorCLI(t, cfg, "-queue", "docq")
	require.Equal(t, 0, code)
	require.Contains(t, out, "doctor: queues=1 poison=0 repaired=0 left=0 quarantined=2")
}
