package redisconn

import (
	"context"
	"io"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestHookNudges: failures nudge while ready, successes nudge only while not ready.
func TestHookNudges(t *testing.T) {
	t.Parallel()
	m := &Monitor{nudges: make(chan struct{}, 1), recovered: make(chan struct{}, 1)}
	ok := func(context.Context, redis.Cmder) error { return nil }
	fail := func(context.Context, redis.Cmder) error { return io.EOF }
	cmd := redis.NewStatusCmd(context.Background(), "ping")
	h := nudgeHook{m}

	m.state.Store(int32(Ready))
	_ = h.ProcessHook(ok)(context.Background(), cmd)
	if len(m.nudges)+len(m.recovered) != 0 {
		t.Fatal("a success while ready must not nudge")
	}
	_ = h.ProcessHook(fail)(context.Background(), cmd)
	if len(m.nudges) != 1 {
		t.Fatal("a network failure must nudge")
	}
	m.state.Store(int32(Down))
	_ = h.ProcessHook(ok)(context.Background(), cmd)
	if len(m.recovered) != 1 {
		t.Fatal("a success while down must report a recovery")
	}
}

// BenchmarkHookOverhead measures the hook alone on the success path, against
// calling the next hook directly: go test -run '^$' -bench HookOverhead -benchmem
func BenchmarkHookOverhead(b *testing.B) {
	m := &Monitor{nudges: make(chan struct{}, 1), recovered: make(chan struct{}, 1)}
	m.state.Store(int32(Ready))
	next := func(context.Context, redis.Cmder) error { return nil }
	ctx := context.Background()
	cmd := redis.NewStringCmd(ctx, "get", "k")
	for _, bc := range []struct {
		name string
		fn   redis.ProcessHook
	}{{"direct", next}, {"with-hook", nudgeHook{m}.ProcessHook(next)}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = bc.fn(ctx, cmd)
			}
		})
	}
}
