package ratelimit_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/ratelimit"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]struct {
		limit  int64
		period time.Duration
	}{
		"10-S": {10, time.Second}, "1000-H": {1000, time.Hour}, "5-m": {5, time.Minute},
		" 7-D ": {7, 24 * time.Hour},
	} {
		r, err := ratelimit.ParseRate(in)
		require.NoError(t, err, in)
		require.Equal(t, want.limit, r.Limit, in)
		require.Equal(t, want.period, r.Period, in)
	}
	for _, bad := range []string{"", "10", "10-X", "abc-S", "-5-S", "0-S", "10-", "-S", "10-S-S", "1.5-S", "+3-S"} {
		_, err := ratelimit.ParseRate(bad)
		require.Error(t, err, "%q must be refused", bad)
		require.ErrorIs(t, err, ratelimit.ErrBadRate)
		require.Contains(t, err.Error(), `"`+bad+`"`, "the error quotes the bad value")
		require.Contains(t, err.Error(), "<limit>-<S|M|H|D>", "the error gives the expected form")
	}
}

func TestNewNamesEveryBadLimitKey(t *testing.T) {
	t.Parallel()
	_, err := ratelimit.New(nil, ratelimit.Options{Limits: map[string]string{
		"api": "100-S", "login": "ten-M", "upload": "5-W",
	}})
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, `ratelimit.limits.login: "ten-M" is not a rate`)
	require.Contains(t, msg, `ratelimit.limits.upload: "5-W" is not a rate`)
	require.NotContains(t, msg, "ratelimit.limits.api")
}

func TestNamed(t *testing.T) {
	t.Parallel()
	reg, err := ratelimit.New(nil, ratelimit.Options{Limits: map[string]string{"api": "2-M", "b": "1-S"}})
	require.NoError(t, err)
	defer reg.Close()
	l, err := reg.Named("api")
	require.NoError(t, err)
	require.Equal(t, int64(2), l.Rate().Limit)
	_, err = reg.Named("nope")
	require.ErrorIs(t, err, ratelimit.ErrUnknownLimiter)
	require.Contains(t, err.Error(), "api, b")

	_, err = reg.Limiter("", "1-S")
	require.Error(t, err, "a limiter needs a name")
	_, err = reg.Limiter("x", "1/S")
	require.ErrorContains(t, err, `limiter x: "1/S" is not a rate`)
}

// checkLimit makes n+1 checks on l and requires the last, only, to be over.
func checkLimit(t *testing.T, l *ratelimit.Limiter, key string, n int64) []ratelimit.Result {
	t.Helper()
	ctx := context.Background()
	var out []ratelimit.Result
	for i := int64(1); i <= n+1; i++ {
		res, err := l.Allow(ctx, key)
		require.NoError(t, err)
		require.Equal(t, n, res.Limit)
		if i <= n {
			require.False(t, res.Reached, "check %d of limit %d", i, n)
			require.Equal(t, n-i, res.Remaining)
		} else {
			require.True(t, res.Reached, "check %d is over limit %d", i, n)
			require.Zero(t, res.Remaining)
		}
		out = append(out, res)
	}
	return out
}

func TestLimiterOnRedis(t *testing.T) {
	t.Parallel()
	e := setup(t)
	l, err := e.reg.Limiter("signup", "5-M")
	require.NoError(t, err)
	start := time.Now()
	res := checkLimit(t, l, "203.0.113.7", 5)
	last := res[len(res)-1]
	require.WithinDuration(t, start.Add(time.Minute), last.Reset, 2*time.Second, "the window ends one period after its first event")
	require.Greater(t, last.RetryIn(), 55*time.Second)

	require.Equal(t, int64(6), e.redisCount(t, "signup:203.0.113.7"), "counted in Redis under the prefix and name")
	ttl, err := e.admin.PTTL(context.Background(), ratelimit.KeyPrefix+"signup:203.0.113.7").Result()
	require.NoError(t, err)
	require.InDelta(t, time.Until(last.Reset).Seconds(), ttl.Seconds(), 1, "Reset is the key's exact expiry, not a rounded second")

	other, err := e.reg.Limiter("signup", "5-M")
	require.NoError(t, err)
	r2, err := other.Allow(context.Background(), "198.51.100.1")
	require.NoError(t, err)
	require.Equal(t, int64(4), r2.Remaining, "keys are independent")

	st := e.reg.Stats()
	require.Equal(t, uint64(7), st.Checks)
	require.Equal(t, uint64(1), st.Rejections)
	require.Zero(t, st.RedisErrors)
	require.Equal(t, "redis", st.Backend)
	require.Zero(t, e.redisErrs.Load())
}

func TestLimiterOnMemory(t *testing.T) {
	t.Parallel()
	e := setup(t, setupOpts{notReady: true})
	require.Equal(t, ratelimit.BackendMemory, e.reg.Backend())
	l, err := e.reg.Limiter("signup", "3-S")
	require.NoError(t, err)
	res := checkLimit(t, l, "k", 3)
	require.Equal(t, int64(-1), e.redisCount(t, "signup:k"), "nothing is written to Redis while not ready")
	require.LessOrEqual(t, res[3].RetryIn(), time.Second)

	// After the window, the key is admitted again.
	time.Sleep(res[3].RetryIn() + 10*time.Millisecond)
	again, err := l.Allow(context.Background(), "k")
	require.NoError(t, err)
	require.False(t, again.Reached)
	require.Equal(t, int64(2), again.Remaining)

	nilReg, err := ratelimit.New(nil, ratelimit.Options{})
	require.NoError(t, err)
	defer nilReg.Close()
	// no client: in memory, ready or not
	require.Equal(t, ratelimit.BackendMemory, nilReg.Backend())
	l2, err := nilReg.Limiter("x", "1-M")
	require.NoError(t, err)
	checkLimit(t, l2, "", 1)
}

func TestLimiterWait(t *testing.T) {
	t.Parallel()
	e := setup(t)
	l, err := e.reg.Limiter("wait", "2-S")
	require.NoError(t, err)
	ctx := context.Background()
	first, err := l.Allow(ctx, "")
	require.NoError(t, err)
	_, err = l.Allow(ctx, "")
	require.NoError(t, err)
	res, err := l.Wait(ctx, "")
	require.NoError(t, err)
	require.False(t, res.Reached)
	// Reset is computed from the key's remaining TTL as the reply arrives, so
	// on a loaded machine it can trail Redis's own expiry by a few ms.
	require.False(t, time.Now().Add(50*time.Millisecond).Before(first.Reset), "Wait returns once the window has reset")

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, _ = l.Allow(ctx, "")
	_, err = l.Wait(short, "")
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// counter counts the commands a client sends.
type counter struct {
	mu   chan struct{}
	cmds []string
}

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.mu <- struct{}{}
		c.cmds = append(c.cmds, cmd.Name())
		<-c.mu
		return next(ctx, cmd)
	}
}
func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.mu <- struct{}{}
		for _, cmd := range cmds {
			c.cmds = append(c.cmds, "pipeline:"+cmd.Name())
		}
		<-c.mu
		return next(ctx, cmds)
	}
}

// commandCalls parses INFO commandstats into calls per command.
func commandCalls(t *testing.T, c *redis.Client) map[string]int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	require.NoError(t, err)
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\r\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok || !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		var n int64
		for _, ch := range rest {
			if ch < '0' || ch > '9' {
				break
			}
			n = n*10 + int64(ch-'0')
		}
		out[name] = n
	}
	return out
}

func TestOneRoundTripPerCheck(t *testing.T) {
	t.Parallel()
	e := setup(t)
	hook := &counter{mu: make(chan struct{}, 1)}
	e.client.AddHook(hook)
	l, err := e.reg.Limiter("rt", "1000-S")
	require.NoError(t, err)
	ctx := context.Background()
	_, err = l.Allow(ctx, "warm") // the connection handshake is not a check's cost
	require.NoError(t, err)
	hook.cmds = nil

	before := commandCalls(t, e.admin)
	const n = 50
	for i := 0; i < n; i++ {
		_, err := l.Allow(ctx, "k")
		require.NoError(t, err)
	}
	after := commandCalls(t, e.admin)

	require.Len(t, hook.cmds, n, "one command per check: %v", hook.cmds)
	for _, c := range hook.cmds {
		require.Equal(t, "evalsha", c)
	}
	var total int64
	for name, calls := range after {
		if name != "info" {
			total += calls - before[name]
		}
	}
	// EVALSHA's inner INCRBY and PTTL are counted by Redis too, but they
	// run inside the one script call and cost no round trip.
	require.Equal(t, int64(n), after["evalsha"]-before["evalsha"], "Redis saw one EVALSHA per check")
	require.Equal(t, int64(n), after["incrby"]-before["incrby"])
	require.Equal(t, int64(3*n), total, "nothing but the script ran: %v", after)
}

func TestNonConnectionErrorIsReturned(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	require.NoError(t, e.admin.HSet(ctx, ratelimit.KeyPrefix+"bad:k", "f", "v").Err())
	l, err := e.reg.Limiter("bad", "5-S")
	require.NoError(t, err)
	_, err = l.Allow(ctx, "k")
	require.Error(t, err, "a Redis error about the key itself is not hidden by the fallback")
	var rerr redis.Error
	require.True(t, errors.As(err, &rerr), "the Redis error is wrapped: %v", err)
	require.Zero(t, e.redisErrs.Load())

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = l.Allow(canceled, "other")
	require.ErrorIs(t, err, context.Canceled)
}
