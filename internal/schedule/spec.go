package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Spec is a parsed cron spec whose ticks are the same on every worker: the
// five-field specs and descriptors (@hourly, @daily...) in UTC, as asynq's
// scheduler ran them, and "@every <d>" at whole multiples of d since the
// Unix epoch. (robfig/cron, which asynq uses, counts @every from each
// process's start, so two workers' ticks would not coincide.)
type Spec struct {
	text  string
	every time.Duration // set for @every
	cron  cron.Schedule // set otherwise
}

// Form is the form Parse accepts, for error messages.
const Form = "five cron fields (minute hour day-of-month month day-of-week, in UTC) or a descriptor such as @hourly, @daily or @every 1m"

// Parse parses spec with the parser asynq's scheduler uses (robfig/cron's
// standard parser: five fields, or a descriptor; no seconds field).
// "@every d" needs d of at least one second, in whole seconds.
func Parse(spec string) (Spec, error) {
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return Spec{}, err
	}
	if cd, ok := s.(cron.ConstantDelaySchedule); ok {
		d, _ := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(spec), "@every")))
		if d < time.Second || d%time.Second != 0 {
			return Spec{}, fmt.Errorf("@every %s: the interval must be whole seconds, at least 1s", d)
		}
		return Spec{text: spec, every: cd.Delay}, nil
	}
	return Spec{text: spec, cron: s}, nil
}

// String is the spec as written.
func (s Spec) String() string { return s.text }

// Next returns the first tick strictly after t, or the zero time when there
// is none within five years (a cron spec such as "0 0 30 2 *").
func (s Spec) Next(t time.Time) time.Time {
	if s.every > 0 {
		d := int64(s.every / time.Second)
		n := t.Unix()/d + 1
		if t.Unix() < 0 && t.Unix()%d != 0 {
			n-- // floor division for times before 1970
		}
		return time.Unix(n*d, 0).UTC()
	}
	if s.cron == nil {
		return time.Time{}
	}
	return s.cron.Next(t.UTC())
}

// MinGap is the shortest time between two consecutive ticks among the next
// 64 after from; 0 when there are fewer than two.
func (s Spec) MinGap(from time.Time) time.Duration {
	if s.every > 0 {
		return s.every
	}
	var gap time.Duration
	prev := s.Next(from)
	for range 64 {
		if prev.IsZero() {
			break
		}
		next := s.Next(prev)
		if next.IsZero() {
			break
		}
		if d := next.Sub(prev); gap == 0 || d < gap {
			gap = d
		}
		prev = next
	}
	return gap
}
