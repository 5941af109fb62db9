package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/store/memory"
)

func (m *memoryStore) size() int {
	n := 0
	m.cache.Load().Range(func(string, *memory.Counter) { n++ })
	return n
}

func TestSweepDropsExpiredCounters(t *testing.T) {
	t.Parallel()
	r, err := New(nil, Options{SweepInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	short := limiter.Rate{Period: 10 * time.Millisecond, Limit: 1}
	for _, k := range []string{"a", "b", "c"} {
		_, err := r.store.Get(context.Background(), k, short)
		require.NoError(t, err)
	}
	require.Equal(t, 3, r.mem.size())
	require.Eventually(t, func() bool { return r.mem.size() == 0 }, 2*time.Second, 5*time.Millisecond)

	require.NoError(t, r.Close())
	require.NoError(t, r.Close(), "Close is idempotent")
	_, err = r.store.Get(context.Background(), "d", short)
	require.NoError(t, err, "limiters work after Close")
}
