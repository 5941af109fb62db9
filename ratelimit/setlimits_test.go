package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/ratelimit"
)

// SetLimits changes the rate of a limiter already handed out, in its
// current window, adds new names, and changes nothing on a bad rate.
func TestSetLimitsChangesLimitersInUse(t *testing.T) {
	t.Parallel()
	reg, err := ratelimit.New(nil, ratelimit.Options{Limits: map[string]string{"api": "10-S", "keep": "1-H"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = reg.Close() })
	api, err := reg.Named("api")
	require.NoError(t, err)
	ctx := context.Background()
	for range 3 {
		res, err := api.Allow(ctx, "k")
		require.NoError(t, err)
		require.False(t, res.Reached)
	}

	err = reg.SetLimits(map[string]string{"api": "2-S", "new": "bogus"})
	require.ErrorContains(t, err, "ratelimit.limits.new")
	require.Equal(t, int64(10), api.Rate().Limit, "a bad rate changes nothing")

	require.NoError(t, reg.SetLimits(map[string]string{"api": "2-S", "new": "5-M"}))
	require.Equal(t, int64(2), api.Rate().Limit, "the limiter in use follows")
	res, err := api.Allow(ctx, "k")
	require.NoError(t, err)
	require.True(t, res.Reached, "the lower rate applies in the current window")

	added, err := reg.Named("new")
	require.NoError(t, err)
	require.Equal(t, time.Minute, added.Rate().Period)
	kept, err := reg.Named("keep")
	require.NoError(t, err)
	require.Equal(t, time.Hour, kept.Rate().Period, "a name absent from the new limits keeps its rate")
}
