package ratelimit

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ulule/limiter/v3"
)

// RateForm is the expected form of a rate string, for error messages.
const RateForm = "<limit>-<S|M|H|D>, e.g. 10-S or 1000-H"

// ErrBadRate is wrapped by every error about a malformed rate string.
var ErrBadRate = errors.New("not a rate")

// ParseRate parses a rate in ulule's format: a positive whole number of
// events, a dash, and a period of S (second), M (minute), H (hour) or D (day).
// Surrounding spaces are ignored and the period may be lower case. The error
// quotes the bad value and the expected form; callers prefix the config key.
func ParseRate(s string) (limiter.Rate, error) {
	t := strings.TrimSpace(s)
	limit, period, ok := strings.Cut(t, "-")
	if !ok || limit == "" || period == "" || strings.ContainsAny(limit, "+-") {
		return limiter.Rate{}, fmt.Errorf("%q is %w (%s)", s, ErrBadRate, RateForm)
	}
	r, err := limiter.NewRateFromFormatted(t)
	if err != nil {
		return limiter.Rate{}, fmt.Errorf("%q is %w (%s): %v", s, ErrBadRate, RateForm, err)
	}
	if r.Limit <= 0 {
		return limiter.Rate{}, fmt.Errorf("%q is %w (%s): the limit must be at least 1", s, ErrBadRate, RateForm)
	}
	return r, nil
}

// parseRateAt parses s and names key, e.g. "ratelimit.tasks.email:send", in
// the error.
func parseRateAt(key, s string) (limiter.Rate, error) {
	r, err := ParseRate(s)
	if err != nil {
		return r, fmt.Errorf("%s: %w", key, err)
	}
	return r, nil
}
