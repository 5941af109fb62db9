package pluginhost

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost/healthcheck"
	"github.com/taskhost/taskhost/internal/config"
	"github.com/taskhost/taskhost/plugins"
)

// errDuringReload is what HandleFunc, Schedule and AddCheck give a plugin
// during Reload.
var errDuringReload = errors.New("not available during Reload: restart to change handlers, schedules or checks")

// Provisioned reports whether plugin id is provisioned, and whether it
// implements plugins.Reloader.
func (s *Set) Provisioned(id string) (provisioned, reloads bool) {
	for _, inst := range s.snapshot() {
		if inst.id == id {
			_, ok := inst.p.(plugins.Reloader)
			return true, ok
		}
	}
	return false, false
}

// Reload calls plugin id's Reload with a Host whose DecodeConfig decodes
// section. A registration attempted during Reload fails it.
func (s *Set) Reload(ctx context.Context, id string, section map[string]any) error {
	var inst *instance
	for _, in := range s.snapshot() {
		if in.id == id {
			inst = in
		}
	}
	if inst == nil {
		return fmt.Errorf("plugin %s: not provisioned", id)
	}
	r, ok := inst.p.(plugins.Reloader)
	if !ok {
		return fmt.Errorf("plugin %s: does not implement plugins.Reloader", id)
	}
	h := &reloadHost{host: inst.host, section: section}
	err := r.Reload(ctx, h)
	if err == nil {
		err = errors.Join(h.errs...)
	}
	if err != nil {
		return fmt.Errorf("plugin %s: reload: %w", id, err)
	}
	return nil
}

// reloadHost is a plugin's Host during Reload.
type reloadHost struct {
	*host
	section map[string]any
	errs    []error
}

func (h *reloadHost) DecodeConfig(v any) error {
	return config.DecodeSection("plugins."+h.id, h.section, v)
}

func (h *reloadHost) HandleFunc(taskType string, _ asynq.HandlerFunc) {
	h.errs = append(h.errs, fmt.Errorf("HandleFunc %q: %w", taskType, errDuringReload))
}

func (h *reloadHost) Schedule(cronspec string, task *asynq.Task, _ ...asynq.Option) (string, error) {
	err := fmt.Errorf("Schedule %q: %w", cronspec, errDuringReload)
	h.errs = append(h.errs, err)
	return "", err
}

func (h *reloadHost) AddCheck(c healthcheck.Check) {
	h.errs = append(h.errs, fmt.Errorf("AddCheck %q: %w", c.Name, errDuringReload))
}

var _ plugins.Host = (*reloadHost)(nil)
