package taskhost

import (
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// Strict priority tries the queues by weight, highest first, then by name.
func TestQueueOrderStrict(t *testing.T) {
	t.Parallel()
	o := newQueueOrder(map[string]int{"low": 1, "critical": 6, "default": 3, "also": 3}, true)
	for range 10 {
		got := o.draw(nil)
		names := make([]string, len(got))
		for i, j := range got {
			names[i] = o.keys[j][0]
		}
		require.Equal(t, []string{"asynq:{critical}:pending", "asynq:{also}:pending", "asynq:{default}:pending", "asynq:{low}:pending"}, names)
	}
}

// Weighted rounds put a queue first in proportion to its weight, and the
// queue after it in proportion among those left: asynq's distribution.
func TestQueueOrderWeighted(t *testing.T) {
	t.Parallel()
	o := newQueueOrder(map[string]int{"a": 6, "b": 3, "c": 1}, false)
	const rounds = 60000
	first := map[int]int{}
	secondAfterA := map[int]int{}
	var perm []int
	for range rounds {
		perm = o.draw(perm[:0])
		require.Len(t, perm, 3)
		require.ElementsMatch(t, []int{0, 1, 2}, perm, "each queue once per round")
		first[perm[0]]++
		if perm[0] == 0 {
			secondAfterA[perm[1]]++
		}
	}
	// Queues are ordered by weight: 0 is a (6), 1 is b (3), 2 is c (1).
	for i, want := range []float64{0.6, 0.3, 0.1} {
		require.InDelta(t, want, float64(first[i])/rounds, 0.02, "queue %d first", i)
	}
	// After a, b comes next 3 times in 4.
	require.InDelta(t, 0.75, float64(secondAfterA[1])/float64(first[0]), 0.02)
}

// A fetcher maps asynq's i-th dequeue call of a round to the i-th queue of
// its drawn order, with that queue's task key prefix; NOSCRIPT keeps the
// position, a task or an error starts a new round.
func TestRoundOrderRewrite(t *testing.T) {
	t.Parallel()
	var r roundOrder
	asynqKeys := []string{"asynq:{x}:pending", "asynq:{x}:paused", "asynq:{x}:active", "asynq:{x}:lease"}
	args := []any{int64(42), "asynq:{x}:t:"}
	keys, got := r.rewrite(asynqKeys, args)
	require.Equal(t, asynqKeys, keys, "no order set: asynq's own call")
	require.Equal(t, args, got)

	r.order = new(atomic.Pointer[queueOrder])
	keys, _ = r.rewrite(asynqKeys, args)
	require.Equal(t, asynqKeys, keys, "no reload yet: asynq's own call")

	r.order.Store(newQueueOrder(map[string]int{"hi": 2, "lo": 1}, true))
	r.pos = 0
	keys, got = r.rewrite(asynqKeys, args)
	require.Equal(t, "asynq:{hi}:pending", keys[0])
	require.Equal(t, "asynq:{hi}:lease", keys[3])
	require.Equal(t, []any{int64(42), "asynq:{hi}:t:"}, got)
	r.advance(redis.Nil, 2)
	keys, _ = r.rewrite(asynqKeys, args)
	require.Equal(t, "asynq:{lo}:pending", keys[0])
	r.advance(redisError("NOSCRIPT No matching script"), 2)
	keys, _ = r.rewrite(asynqKeys, args)
	require.Equal(t, "asynq:{lo}:pending", keys[0], "asynq's EVAL after NOSCRIPT is the same call")
	r.advance(redis.Nil, 2)
	require.Zero(t, r.pos, "the round's last queue ends it")
	r.rewrite(asynqKeys, args)
	r.advance(nil, 2)
	require.Zero(t, r.pos, "a task ends the round")
}

type redisError string

func (e redisError) Error() string { return string(e) }
