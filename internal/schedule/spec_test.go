package schedule_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/schedule"
)

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"", "every minute", "* * * * * *", "@every 1500ms", "@every 0s", "@every -1s", "61 * * * *", "@weekly-ish"} {
		_, err := schedule.Parse(spec)
		require.Error(t, err, spec)
	}
}

// @every ticks fall on whole multiples of the interval since the epoch,
// whatever time a worker asks from: two workers started at different times
// compute the same ticks.
func TestEveryIsAlignedToTheEpoch(t *testing.T) {
	t.Parallel()
	s, err := schedule.Parse("@every 7s")
	require.NoError(t, err)
	base := time.Unix(1_700_000_003, 0) // a multiple of 7 is 1_700_000_001
	require.Equal(t, time.Unix(1_700_000_008, 0).UTC(), s.Next(base))
	require.Equal(t, time.Unix(1_700_000_008, 0).UTC(), s.Next(base.Add(4*time.Second+999*time.Millisecond)))
	require.Equal(t, time.Unix(1_700_000_015, 0).UTC(), s.Next(time.Unix(1_700_000_008, 0)), "strictly after a tick")
	require.Equal(t, 7*time.Second, s.MinGap(base))

	// Two "workers" asking at any two times see the same tick sequence.
	a, b := base, base.Add(2345*time.Millisecond)
	ta, tb := s.Next(a), s.Next(b)
	for range 5 {
		require.Equal(t, ta, tb)
		ta, tb = s.Next(ta), s.Next(tb)
	}
	require.Equal(t, time.Unix(-7, 0).UTC(), s.Next(time.Unix(-8, 0)), "before the epoch too")
}

func TestCronSpecIsUTC(t *testing.T) {
	t.Parallel()
	s, err := schedule.Parse("30 9 * * 1-5") // weekdays at 09:30 UTC
	require.NoError(t, err)
	berlin := time.FixedZone("CET", 3600)
	from := time.Date(2026, 1, 2, 9, 0, 0, 0, berlin) // Friday 08:00 UTC
	require.Equal(t, time.Date(2026, 1, 2, 9, 30, 0, 0, time.UTC), s.Next(from))
	require.Equal(t, time.Date(2026, 1, 5, 9, 30, 0, 0, time.UTC), s.Next(s.Next(from)), "Monday next")
	require.Equal(t, 24*time.Hour, s.MinGap(from))

	hourly, err := schedule.Parse("@hourly")
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC), hourly.Next(time.Date(2026, 1, 2, 8, 59, 59, 900, time.UTC)))

	never, err := schedule.Parse("0 0 30 2 *") // February 30th
	require.NoError(t, err)
	require.True(t, never.Next(from).IsZero())
	require.Zero(t, never.MinGap(from))
}

func TestTickID(t *testing.T) {
	t.Parallel()
	require.Equal(t, "schedules.report@2026-01-02T09:30:00Z",
		schedule.TickID("schedules.report", time.Date(2026, 1, 2, 10, 30, 0, 0, time.FixedZone("CET", 3600))))
}

func TestCheckUnique(t *testing.T) {
	t.Parallel()
	s, err := schedule.Parse("@every 1m")
	require.NoError(t, err)
	now := time.Now()
	require.NoError(t, schedule.CheckUnique(s, 59*time.Second, now))
	require.ErrorContains(t, schedule.CheckUnique(s, time.Minute, now), "not shorter than the shortest gap")
	require.ErrorContains(t, schedule.CheckUnique(s, 500*time.Millisecond, now), "less than 1s")
}
