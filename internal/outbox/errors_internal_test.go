package outbox

import (
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
)

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	task := asynq.NewTaskWithHeaders("rt:a", []byte{0, 1, 2, 255}, map[string]string{"h": "v"}, asynq.Queue("q"))
	s, err := compose(task, []asynq.Option{asynq.ProcessIn(3e9), asynq.Unique(5e9), asynq.Group("g")}, "id-1", time.Now())
	require.NoError(t, err)
	b, err := s.encode()
	require.NoError(t, err)
	got, err := decode(b)
	require.NoError(t, err)
	require.Equal(t, s.ID, got.ID)
	require.Equal(t, s.Payload, got.Payload)
	require.Equal(t, s.Headers, got.Headers)
	require.Equal(t, "q", got.Queue)
	require.True(t, s.ProcessAt.Equal(got.ProcessAt))
	require.True(t, s.Accepted.Equal(got.Accepted))
	require.Equal(t, s.Unique, got.Unique)
	require.Equal(t, "g", got.Group)

	_, err = decode([]byte(`{"v":9,"id":"x","type":"t","queue":"q"}`))
	require.ErrorContains(t, err, "version 9")
}
