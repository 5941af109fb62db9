package taskhostcmd

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/config"
	"github.com/taskhost/taskhost/internal/outbox"
	"github.com/taskhost/taskhost/internal/pluginhost"
	"github.com/taskhost/taskhost/plugins"
)

// taskTypeCheck is what `worker enqueue` knows about a task type from the
// plugins compiled into this binary, each provisioned on a dry-run host
// with its section of the config (or none).
type taskTypeCheck struct {
	set     *pluginhost.Set
	owner   string // the plugin whose handler serves the type
	handled bool
	enabled bool // the owner is enabled in the config
	known   []string
}

func checkTaskType(ctx context.Context, cfg taskhost.Config, taskType string) taskTypeCheck {
	sections := map[string]map[string]any{}
	for _, id := range plugins.IDs() {
		sections[id] = cfg.Plugins[id] // nil: the plugin with its defaults
	}
	set, _, _ := pluginhost.DryRun(ctx, sections, cfg.RateLimit.Limits)
	c := taskTypeCheck{set: set, known: set.TaskTypes()}
	c.owner, c.handled = set.Handles(taskType)
	_, c.enabled = cfg.Plugins[c.owner]
	return c
}

// problem says what will become of a task of taskType in a worker with this
// binary and config, when that is not "it runs"; "" otherwise.
func (c taskTypeCheck) problem(taskType, configPath string) string {
	switch {
	case c.handled && c.enabled:
		return ""
	case c.handled:
		return fmt.Sprintf("task type %q is handled by plugin %s, which is not enabled under plugins: in the config (%s); "+
			"a worker with this config would retry it, then archive it (enable it with plugins: {%s: {}})",
			taskType, c.owner, configPath, c.owner)
	}
	msg := fmt.Sprintf("no plugin compiled into this binary handles task type %q", taskType)
	if near, ok := config.Nearest(taskType, c.known); ok {
		msg += fmt.Sprintf(" (did you mean %s?)", near)
	}
	if len(c.known) > 0 {
		msg += "; handled: " + strings.Join(c.known, ", ")
	}
	return msg + "; a worker built like this one would retry it, then archive it"
}

// options are the task's options: the flags', then the task type's
// defaults (a plugin's TaskDefaults) for what the flags leave unset, then
// worker.max_retry when neither sets a max retry.
func (c taskTypeCheck) options(task *asynq.Task, flags []asynq.Option, maxRetry int) []asynq.Option {
	opts := c.set.WithDefaults(task, flags)
	has := slices.ContainsFunc(append(slices.Clone(outbox.TaskOptions(task)), opts...), func(o asynq.Option) bool {
		return o.Type() == asynq.MaxRetryOpt
	})
	if !has {
		opts = append(opts, asynq.MaxRetry(maxRetry))
	}
	return opts
}
