package outbox_test

import (
	"bytes"
	"context"
	"math"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/outbox"
	"github.com/taskhost/taskhost/internal/redistest"
)

func TestFullOutboxAtMaxTasks(t *testing.T) {
	t.Parallel()
	port, addr := closedPort(t)
	f := setup(t, addr, outbox.Options{MaxTasks: 10, DrainRate: math.Inf(1)})
	for i := range 10 {
		_, err := f.c.Enqueue(asynq.NewTask("full:n", payload(i)))
		require.NoError(t, err)
	}
	for i := 10; i < 13; i++ {
		info, err := f.c.Enqueue(asynq.NewTask("full:n", payload(i)))
		require.ErrorIs(t, err, outbox.ErrOutboxFull)
		require.Nil(t, info)
		require.Contains(t, err.Error(), "max 10 tasks")
	}
	n, _ := f.c.Depth()
	require.Equal(t, 10, n, "refused tasks are not held")
	require.Len(t, f.logs.lines("outbox full"), 1, "logged once, not per refusal")

	startOn(t, port, redistest.Options{})
	f.up()
	requireExactlyOnce(t, inRedis(t, f.rdb, "default"), 10)

	f.ready.Store(false)
	_, err := f.c.Enqueue(asynq.NewTask("full:n", payload(10)))
	require.NoError(t, err, "a drained outbox takes tasks again")
}

func TestFullOutboxAtMaxBytes(t *testing.T) {
	t.Parallel()
	port, addr := closedPort(t)
	big := bytes.Repeat([]byte("x"), 1000)
	f := setup(t, addr, outbox.Options{MaxBytes: 5000, DrainRate: math.Inf(1)})

	var accepted []string
	var full error
	for i := range 10 {
		r, err := f.c.Submit(context.Background(), asynq.NewTask("full:b", append(payload(i), big...)))
		if err != nil {
			full = err
			break
		}
		accepted = append(accepted, r.Info.ID)
	}
	require.ErrorIs(t, full, outbox.ErrOutboxFull)
	require.Contains(t, full.Error(), "5000 bytes")
	require.NotEmpty(t, accepted)
	n, b := f.c.Depth()
	require.Equal(t, len(accepted), n)
	require.LessOrEqual(t, b, int64(5000))

	// A task bigger than the whole outbox is refused too, and changes nothing.
	_, err := f.c.Enqueue(asynq.NewTask("full:b", bytes.Repeat([]byte("y"), 6000)))
	require.ErrorIs(t, err, outbox.ErrOutboxFull)
	n2, b2 := f.c.Depth()
	require.Equal(t, n, n2)
	require.Equal(t, b, b2)

	startOn(t, port, redistest.Options{})
	f.up()
	got := inRedis(t, f.rdb, "default")
	require.Len(t, got, len(accepted))
	for i, id := range accepted {
		infos := got[string(append(payload(i), big...))]
		require.Len(t, infos, 1)
		require.Equal(t, id, infos[0].ID)
	}
}
