package taskhost

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Queue weights that reload. asynq fixes a server's queues and weights
// when it starts, and draws the order of each dequeue round from them: one
// call of the dequeue script per queue, in that order, until one gives a
// task. A reload of worker.queues' weights or of worker.strict_priority
// stores a queueOrder; from then on each fetcher answers asynq's i-th call
// of a round with the i-th queue of an order drawn from the new weights, the
// same way asynq draws it. The set of queues cannot change on a reload:
// asynq's forwarder and recoverer, and the wake-ups, watch the queues the
// servers started with.

// queueOrder is one set of weights, ready for drawing rounds.
type queueOrder struct {
	weights []int
	total   int
	strict  bool
	// keys and prefix are the dequeue script's keys (pending, paused,
	// active, lease) and task key prefix of each queue.
	keys   [][]string
	prefix []string
}

// newQueueOrder orders weights by weight, highest first, then by name, as
// strict priority takes them.
func newQueueOrder(weights map[string]int, strict bool) *queueOrder {
	names := make([]string, 0, len(weights))
	for name := range weights {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(weights[b], weights[a]), cmp.Compare(a, b))
	})
	o := &queueOrder{strict: strict}
	for _, name := range names {
		w := weights[name]
		o.weights = append(o.weights, w)
		o.total += w
		tag := "asynq:{" + name + "}:"
		o.keys = append(o.keys, []string{tag + "pending", tag + "paused", tag + "active", tag + "lease"})
		o.prefix = append(o.prefix, tag+"t:")
	}
	return o
}

// draw appends the indexes of one round's queues to out, in the order the
// round tries them. Under strict priority that is by weight. Otherwise each
// next queue is drawn among those left with a probability proportional to
// its weight: the same distribution as asynq's (every queue repeated weight
// times, shuffled, duplicates dropped), without building that list.
func (o *queueOrder) draw(out []int) []int {
	n := len(o.weights)
	for i := range n {
		out = append(out, i)
	}
	if o.strict {
		return out
	}
	left := o.total
	for i := 0; i < n-1; i++ {
		r := rand.IntN(left)
		j := i
		for ; j < n-1 && r >= o.weights[out[j]]; j++ {
			r -= o.weights[out[j]]
		}
		out[i], out[j] = out[j], out[i]
		left -= o.weights[out[i]]
	}
	return out
}

// roundOrder is a fetcher's side of the reloaded weights; only asynq's
// processor goroutine, the one caller of the dequeue script, uses it.
type roundOrder struct {
	order *atomic.Pointer[queueOrder] // nil, or holding nil: asynq's own order
	cur   *queueOrder                 // the order of the round under way
	perm  []int
	pos   int // the position in the round of asynq's next call
}

// rewrite returns the keys and arguments of the dequeue call at the
// round's current position: asynq's own while no reload changed the
// weights.
func (r *roundOrder) rewrite(keys []string, args []any) ([]string, []any) {
	if r.order == nil || len(args) != 2 {
		return keys, args
	}
	if r.pos == 0 {
		r.cur = r.order.Load()
		if r.cur != nil {
			r.perm = r.cur.draw(r.perm[:0])
		}
	}
	if r.cur == nil || r.pos >= len(r.perm) {
		return keys, args
	}
	i := r.perm[r.pos]
	return r.cur.keys[i], []any{args[0], r.cur.prefix[i]}
}

// advance moves to the next position after a call that answered err:
// the next queue after an empty one, the round's start after a task, an
// error or the round's last queue. After NOSCRIPT asynq makes the same call
// again by EVAL, at the same position.
func (r *roundOrder) advance(err error, queues int) {
	switch {
	case err == redis.Nil:
		if r.pos++; r.pos >= queues {
			r.pos = 0
		}
	case !isNoScript(err):
		r.pos = 0
	}
}

// refresh draws a round held across a wait for a wake-up again when a
// reload changed the weights meanwhile, so that the first task after the
// wait follows them too.
func (r *roundOrder) refresh(round []dequeueCall) []dequeueCall {
	if r.order == nil || len(round) == 0 || len(round[0].args) != 2 {
		return round
	}
	o := r.order.Load()
	if o == nil || o == r.cur || len(round) != len(o.keys) {
		return round
	}
	r.cur = o
	r.perm = o.draw(r.perm[:0])
	out := make([]dequeueCall, len(round))
	for i, j := range r.perm {
		out[i] = round[0]
		out[i].keys, out[i].args = o.keys[j], []any{round[0].args[0], o.prefix[j]}
	}
	return out
}
