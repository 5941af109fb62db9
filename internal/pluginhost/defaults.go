package pluginhost

import (
	"fmt"
	"slices"

	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost/internal/outbox"
)

// defaults are the options a plugin set for one task type.
type defaults struct {
	owner string
	opts  []asynq.Option
}

// defaultable are the options a task type may default: those that describe
// the type rather than one task (an ID or a time to run).
var defaultable = map[asynq.OptionType]bool{
	asynq.QueueOpt:     true,
	asynq.TimeoutOpt:   true,
	asynq.MaxRetryOpt:  true,
	asynq.UniqueOpt:    true,
	asynq.RetentionOpt: true,
}

// setDefaults records opts as the defaults of taskType for plugin id.
func (s *Set) setDefaults(id, taskType string, opts []asynq.Option) error {
	if taskType == "" {
		return fmt.Errorf("TaskDefaults with an empty task type")
	}
	for _, o := range opts {
		if o == nil || !defaultable[o.Type()] {
			return fmt.Errorf("TaskDefaults %q: %v cannot be a default (expected asynq.Queue, Timeout, MaxRetry, Unique or Retention)", taskType, o)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, dup := s.defaults[taskType]; dup && d.owner != id {
		return fmt.Errorf("task type %q already has defaults from plugin %q", taskType, d.owner)
	}
	s.defaults[taskType] = defaults{owner: id, opts: slices.Clone(opts)}
	return nil
}

// Defaults returns the default options of taskType (set for the type, or
// for the longest prefix of it that has some, as handlers are matched),
// or nil.
func (s *Set) Defaults(taskType string) []asynq.Option {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := match(s.defaults, taskType); ok {
		return slices.Clone(s.defaults[p].opts)
	}
	return nil
}

// WithDefaults returns the options to enqueue task with: the defaults of
// its type that neither task's own options nor opts set, then opts. (asynq
// applies a task's own options first and the call's after them, so a
// default placed among the call's options would override the task's own.)
// A Deadline counts as setting the timeout.
func (s *Set) WithDefaults(task *asynq.Task, opts []asynq.Option) []asynq.Option {
	d := s.Defaults(task.Type())
	if len(d) == 0 {
		return opts
	}
	given := map[asynq.OptionType]bool{}
	for _, o := range append(slices.Clone(outbox.TaskOptions(task)), opts...) {
		if o != nil {
			given[o.Type()] = true
		}
	}
	if given[asynq.DeadlineOpt] {
		given[asynq.TimeoutOpt] = true
	}
	out := make([]asynq.Option, 0, len(d)+len(opts))
	for _, o := range d {
		if !given[o.Type()] {
			out = append(out, o)
		}
	}
	return append(out, opts...)
}
