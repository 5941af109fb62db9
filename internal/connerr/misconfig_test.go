package connerr_test

import (
	"context"
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/connerr"
	"github.com/taskhost/taskhost/internal/redistest"
)

func TestMisconfigured(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{Password: "pw"})
	ctx := context.Background()
	err := client(t, redis.Options{Addr: s.Addr()}).Ping(ctx).Err()
	require.Equal(t, connerr.ProblemAuth, connerr.Misconfigured(err), "%v", err)
	require.False(t, connerr.Down(err))
	err = client(t, redis.Options{Addr: s.Addr(), Password: "pw", DB: 1000}).Ping(ctx).Err()
	require.Equal(t, connerr.ProblemDatabase, connerr.Misconfigured(err), "%v", err)
	require.True(t, connerr.Reportable(err))
	require.Empty(t, connerr.Misconfigured(errors.New("ERR something else")))
	require.Empty(t, connerr.Misconfigured(nil))
}
