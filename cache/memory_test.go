package cache_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/cache"
)

func TestMemoryBound(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	const bound = 100
	m := cache.NewMemory(cache.Options{MemoryMaxEntries: bound})
	defer m.Close()
	a, b := m.Namespace("a"), m.Namespace("b")
	for i := range 10 * bound {
		key := fmt.Sprintf("k%d", i)
		require.NoError(t, a.Set(ctx, key, []byte(key), 0))
		require.NoError(t, b.Set(ctx, key, []byte(key), 0))
	}
	n := m.Len()
	require.LessOrEqual(t, n, bound, "the bound counts entries over all namespaces")
	require.Greater(t, n, bound/2, "eviction keeps the store near its bound, not empty")
}

func TestMemoryDefaults(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	m := cache.NewMemory(cache.Options{})
	defer m.Close()
	s := m.Namespace("d")
	require.NoError(t, s.Set(ctx, "k", make([]byte, cache.DefaultMaxValueBytes), 0))
	require.ErrorIs(t, s.Set(ctx, "k", make([]byte, cache.DefaultMaxValueBytes+1), 0), cache.ErrValueTooLarge)
}
