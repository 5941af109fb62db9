package taskhost

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost/internal/config"
	"github.com/taskhost/taskhost/internal/schedule"
)

// SchedulesKey is the config section of the periodic tasks, schedules.<name>.
const SchedulesKey = "schedules"

// ScheduleConfig is one entry of the schedules section: a task that every
// worker on the same Redis enqueues on a cron spec, once per tick across
// all of them (docs/scaling.md, "Periodic tasks").
type ScheduleConfig struct {
	// Cron is the spec: five fields in UTC (minute hour day-of-month month
	// day-of-week), or a descriptor such as @hourly, @daily or @every 10m.
	// @every ticks fall on whole multiples of the interval since the Unix
	// epoch, the same on every worker.
	Cron string `koanf:"cron"`
	// Type is the task type; a compiled-in plugin must handle it.
	Type string `koanf:"type"`
	// Payload is the task's payload as JSON: a string of JSON text, or a
	// YAML value (map, list, number...) that is encoded as JSON. Empty means
	// no payload. It may hold secrets: it is never logged or shown.
	Payload any `koanf:"payload"`
	// Queue is the queue; "default" when empty.
	Queue string `koanf:"queue"`
	// Options are the task's enqueue options.
	Options ScheduleOptions `koanf:"options"`
}

// ScheduleOptions are the enqueue options of a schedules entry.
type ScheduleOptions struct {
	// MaxRetry is how often a failed run is retried; worker.max_retry when unset.
	MaxRetry *int `koanf:"max_retry"`
	// Timeout bounds one run; worker.task_timeout when 0.
	Timeout time.Duration `koanf:"timeout"`
	// Unique, when set, refuses a tick while the task of an earlier tick is
	// still pending, scheduled or running, for at most this long
	// (asynq.Unique). It must be shorter than the shortest gap between ticks.
	Unique time.Duration `koanf:"unique"`
	// Retention keeps a completed run in Redis for this long; the scheduler
	// keeps each tick's run at least for the tick's retry window (until the
	// next tick, a minute at least) plus a minute, which is how it refuses a
	// second run of one tick.
	Retention time.Duration `koanf:"retention"`
}

// The expected forms of the schedules keys.
const (
	formSchedules    = "a map of schedule name to a section with cron, type, payload, queue and options"
	formScheduleName = "a schedule name (letters, digits, '-' and '_')"
	formCron         = schedule.Form
	formTaskType     = "a task type (non-empty, no whitespace)"
	formPayload      = "JSON text (a string), or a YAML value that is encoded as JSON"
	formQueue        = `a queue name (no whitespace, "{" or "}"); empty means "default"`
	formUnique       = "a duration of at least 1s, shorter than the shortest gap between ticks, or 0 for none"
	formNonNegDur    = "a duration >= 0 with a unit, such as 30s or 10m"
)

var scheduleName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// scheduleMaxRetry bounds options.max_retry as worker.max_retry is bounded.
var scheduleMaxRetry = func() bound {
	b, _ := boundOf("worker.max_retry")
	return b
}()

// scheduleForm returns the form of a key below schedules, or "".
func scheduleForm(key string) string {
	rest, ok := strings.CutPrefix(key, SchedulesKey+".")
	if !ok {
		if key == SchedulesKey {
			return formSchedules
		}
		return ""
	}
	_, field, ok := strings.Cut(rest, ".")
	if !ok {
		return "a section with cron, type, payload, queue and options"
	}
	switch field {
	case "cron":
		return formCron
	case "type":
		return formTaskType
	case "payload":
		return formPayload
	case "queue":
		return formQueue
	case "options":
		return "a section with max_retry, timeout, unique and retention"
	case "options.max_retry":
		return scheduleMaxRetry.form()
	case "options.unique":
		return formUnique
	case "options.timeout", "options.retention":
		return formNonNegDur
	}
	return ""
}

// checkSchedules adds the problems of the schedules section that need no
// plugin: name, cron spec, type, payload, queue and options. That a plugin
// handles the type is checked when the plugins are provisioned
// (Runtime.checkScheduleTypes).
func (c Config) checkSchedules(k check) {
	now := time.Now()
	for _, name := range slices.Sorted(maps.Keys(c.Schedules)) {
		s := c.Schedules[name]
		key := SchedulesKey + "." + name
		if !scheduleName.MatchString(name) {
			k.not(key, name, formScheduleName)
			continue
		}
		spec, err := schedule.Parse(s.Cron)
		switch {
		case strings.TrimSpace(s.Cron) == "":
			k.ps.Add(key+".cron", "required ("+formCron+")")
		case err != nil:
			k.ps.Add(key+".cron", fmt.Sprintf("%s is not %s: %v", config.Show(key+".cron", s.Cron), formCron, err))
		}
		switch {
		case s.Type == "":
			k.ps.Add(key+".type", "required ("+formTaskType+")")
		case strings.ContainsFunc(s.Type, unicode.IsSpace):
			k.not(key+".type", s.Type, formTaskType)
		}
		if _, err := s.payload(); err != nil {
			k.ps.Add(key+".payload", err.Error()+" (expected "+formPayload+")")
		}
		if q := s.Queue; q != "" && (strings.ContainsFunc(q, unicode.IsSpace) || strings.ContainsAny(q, "{}")) {
			k.not(key+".queue", q, formQueue)
		}
		o := s.Options
		if o.MaxRetry != nil {
			k.within(key+".options.max_retry", int64(*o.MaxRetry), scheduleMaxRetry)
		}
		if o.Timeout < 0 {
			k.not(key+".options.timeout", o.Timeout, formNonNegDur)
		}
		if o.Retention < 0 {
			k.not(key+".options.retention", o.Retention, formNonNegDur)
		}
		if o.Unique != 0 && err == nil {
			if uerr := schedule.CheckUnique(spec, o.Unique, now); uerr != nil {
				k.ps.Add(key+".options.unique", uerr.Error())
			}
		} else if o.Unique < 0 {
			k.not(key+".options.unique", o.Unique, formUnique)
		}
	}
}

// payload returns the payload's bytes: a string as it is (it must be JSON),
// anything else encoded as JSON. The error never quotes the payload, which
// may hold a secret.
func (s ScheduleConfig) payload() ([]byte, error) {
	switch p := s.Payload.(type) {
	case nil:
		return nil, nil
	case string:
		if strings.TrimSpace(p) == "" {
			return nil, nil
		}
		var v any
		if err := json.Unmarshal([]byte(p), &v); err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				return nil, fmt.Errorf("is not valid JSON: syntax error at byte %d", se.Offset)
			}
			return nil, errors.New("is not valid JSON")
		}
		return []byte(p), nil
	}
	b, err := json.Marshal(s.Payload)
	if err != nil {
		return nil, errors.New("cannot be encoded as JSON")
	}
	return b, nil
}

// scheduleEntries returns the scheduler entries of c.Schedules, named
// schedules.<name>; c is valid.
func (c Config) scheduleEntries() []schedule.Entry {
	out := make([]schedule.Entry, 0, len(c.Schedules))
	for _, name := range slices.Sorted(maps.Keys(c.Schedules)) {
		s := c.Schedules[name]
		payload, _ := s.payload()
		queue := s.Queue
		if queue == "" {
			queue = "default"
		}
		maxRetry := c.Worker.MaxRetry
		if s.Options.MaxRetry != nil {
			maxRetry = *s.Options.MaxRetry
		}
		opts := []asynq.Option{asynq.Queue(queue), asynq.MaxRetry(maxRetry)}
		if s.Options.Timeout > 0 {
			opts = append(opts, asynq.Timeout(s.Options.Timeout))
		}
		if s.Options.Unique > 0 {
			opts = append(opts, asynq.Unique(s.Options.Unique))
		}
		if s.Options.Retention > 0 {
			opts = append(opts, asynq.Retention(s.Options.Retention))
		}
		out = append(out, schedule.Entry{
			Name: SchedulesKey + "." + name,
			Spec: s.Cron,
			Task: asynq.NewTask(s.Type, payload),
			Opts: opts,
		})
	}
	return out
}

// redactedSchedules copies schedules with each set payload replaced by "***".
func redactedSchedules(in map[string]ScheduleConfig) map[string]ScheduleConfig {
	if in == nil {
		return nil
	}
	out := make(map[string]ScheduleConfig, len(in))
	for name, s := range in {
		if s.Payload != nil && s.Payload != "" {
			s.Payload = config.RedactedValue
		}
		if s.Options.MaxRetry != nil {
			n := *s.Options.MaxRetry
			s.Options.MaxRetry = &n
		}
		out[name] = s
	}
	return out
}
