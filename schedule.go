package taskhost

import (
	"fmt"
	"maps"
	"slices"
	"strings"

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
	var ps config.Problems
	for _, e := range r.cfg.scheduleEntries() {
		if err := outbox.CheckPayload(e.Task, r.cfg.Worker.MaxPayloadBytes); err != nil {
			ps.Add(e.Name+".payload", err.Error())
			continue
		}
		if err := r.queue.scheduler.Add(e); err != nil {
			ps.Add(e.Name, err.Error())
		}
	}
	return ps.Err(nil)
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
// plugin handles each schedules entry's type: a config error naming
// schedules.<name>.type otherwise.
func (r *Runtime) checkScheduleTypes() error {
	var ps config.Problems
	for _, name := range slices.Sorted(maps.Keys(r.cfg.Schedules)) {
		typ := r.cfg.Schedules[name].Type
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
