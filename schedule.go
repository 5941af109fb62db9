package taskhost

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost/internal/config"
	"github.com/taskhost/taskhost/internal/outbox"
	"github.com/taskhost/taskhost/internal/schedule"
)

// Periodic tasks: the entries of the schedules section and those that
// plugins register with Host.Schedule run on taskhost's scheduler
// (internal/schedule), which every worker runs and which enqueues each tick
// once across the fleet. Entries are named schedules.<name> and
// plugins.<id>.<task type>; the name is part of each tick's task ID, so it
// is the same on every worker that runs the same config.

// addConfigSchedules adds the schedules section to the scheduler; cfg is valid.
func (r *Runtime) addConfigSchedules() error {
	entries, err := r.configSchedules(r.cfg, nil)
	if err != nil {
		return err
	}
	var ps config.Problems
	for _, e := range entries {
		if err := r.queue.scheduler.Add(e); err != nil {
			ps.Add(e.Name, err.Error())
		}
	}
	return ps.Err(nil)
}

// configSchedules returns the scheduler entries of cfg's schedules
// section, or of the names given (all when names is nil), each checked as
// Scheduler.Add checks it and with a payload that fits
// worker.max_payload_bytes; cfg is valid. A problem names its key.
func (r *Runtime) configSchedules(cfg Config, names []string) ([]schedule.Entry, error) {
	var ps config.Problems
	var out []schedule.Entry
	now := time.Now()
	for _, e := range cfg.scheduleEntries() {
		if names != nil && !slices.Contains(names, strings.TrimPrefix(e.Name, SchedulesKey+".")) {
			continue
		}
		if err := outbox.CheckPayload(e.Task, cfg.Worker.MaxPayloadBytes); err != nil {
			ps.Add(e.Name+".payload", err.Error())
			continue
		}
		if err := schedule.Check(e.Spec, e.Task, e.Opts, now); err != nil {
			ps.Add(e.Name, err.Error())
			continue
		}
		out = append(out, e)
	}
	return out, ps.Err(nil)
}

// reloadSchedules replaces the schedules entries named (schedules.<name>
// changed, added or removed) with those of cfg; the entries are checked
// (configSchedules, checkScheduleTypes). Plugins' entries are untouched.
// An entry that changed runs from its next tick on; a tick is the same task
// ID before and after, so none runs twice.
func (r *Runtime) reloadSchedules(names []string, entries []schedule.Entry) {
	for _, name := range names {
		r.queue.scheduler.Remove(SchedulesKey + "." + name)
	}
	for _, e := range entries {
		if err := r.queue.scheduler.Add(e); err != nil { // checked; the name was removed
			r.log.Error("schedule could not be added on reload", "component", "reload", "schedule", e.Name, "error", err)
		}
	}
	r.queue.schedulesChanged()
}

// schedulePlugin adds a plugin's periodic task under the name the plugin
// host chose; its payload must fit worker.max_payload_bytes.
func (r *Runtime) schedulePlugin(name, cronspec string, task *asynq.Task, opts ...asynq.Option) error {
	if err := outbox.CheckPayload(task, r.cfg.Worker.MaxPayloadBytes); err != nil {
		return err
	}
	return r.queue.scheduler.Add(schedule.Entry{Name: name, Spec: cronspec, Task: task, Opts: opts})
}

// checkScheduleTypes checks, once the plugins are provisioned, that a
// plugin handles each schedules entry's type of cfg: a config error naming
// schedules.<name>.type otherwise.
func (r *Runtime) checkScheduleTypes(cfg Config) error {
	var ps config.Problems
	for _, name := range slices.Sorted(maps.Keys(cfg.Schedules)) {
		typ := cfg.Schedules[name].Type
		if _, ok := r.plugins.Handles(typ); ok {
			continue
		}
		handled := r.plugins.TaskTypes()
		list := "none: no plugin is configured under plugins"
		if len(handled) > 0 {
			list = strings.Join(handled, ", ")
		}
		ps.Add(SchedulesKey+"."+name+".type", fmt.Sprintf("%s is not handled by any configured plugin (expected one of: %s)",
			config.Show(SchedulesKey+"."+name+".type", typ), list))
	}
	return ps.Err(nil)
}
