package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	taskhostcmd "github.com/taskhost/taskhost/cmd"
	"github.com/taskhost/taskhost/plugins"
	_ "github.com/taskhost/taskhost/plugins/all"
)

// TaskType is the task type the chaos plugin handles.
const TaskType = "chaos:record"

// RecordKey is the list, in the recorder Redis, that holds two entries per
// execution, one as it starts and one as it finishes:
// "<S|F> <task id> <worker pid> <unix nanoseconds> <retry count> <pad bytes>".
const RecordKey = "chaos:exec"

// Args is the chaos:record payload.
type Args struct {
	Seq int    `json:"seq"`
	Pad string `json:"pad,omitempty"` // ballast for the large-payload cases
}

// Validate refuses a negative sequence number.
func (a *Args) Validate() error {
	if a.Seq < 0 {
		return fmt.Errorf("seq %d is negative", a.Seq)
	}
	return nil
}

// Config is plugins.chaos.
type Config struct {
	// RecordAddr is the host:port of the recorder Redis.
	RecordAddr string `koanf:"record_addr"`
	// Work is how long each execution pretends to work before it records
	// itself, so that some tasks are in flight when a process is killed.
	Work time.Duration `koanf:"work"`
	// Every, when set, schedules a chaos:record task (seq 0) on this cron
	// spec through Host.Schedule.
	Every string `koanf:"every"`
}

// Plugin records executions. The recorder is the test's observer, outside
// the system under test, which is why this plugin keeps its own client
// instead of using the Host's Redis.
type Plugin struct {
	cfg Config
	rec *redis.Client
	pid int
}

func init() { plugins.Register(&Plugin{}) }

// PluginInfo registers the plugin as "chaos".
func (*Plugin) PluginInfo() plugins.Info {
	return plugins.Info{ID: "chaos", New: func() plugins.Plugin { return &Plugin{} }}
}

// Provision decodes plugins.chaos and registers the chaos:record handler.
func (p *Plugin) Provision(_ context.Context, h plugins.Host) error {
	if err := h.DecodeConfig(&p.cfg); err != nil {
		return err
	}
	if p.cfg.RecordAddr == "" {
		return &plugins.ConfigError{Key: "plugins.chaos.record_addr", Err: errors.New("is empty")}
	}
	p.pid = os.Getpid()
	p.rec = redis.NewClient(&redis.Options{
		Addr:         p.cfg.RecordAddr,
		DialTimeout:  2 * time.Second,
		ReadTimeout:  5 * time.Second,
		WriteTimeout: 5 * time.Second,
		MaxRetries:   -1, // a retried RPUSH could record one execution twice
	})
	plugins.Handle(h, TaskType, p.record)
	if p.cfg.Every != "" {
		task, err := plugins.NewTask(TaskType, Args{})
		if err != nil {
			return err
		}
		if _, err := h.Schedule(p.cfg.Every, task, asynq.MaxRetry(0)); err != nil {
			return &plugins.ConfigError{Key: "plugins.chaos.every", Err: err}
		}
	}
	return nil
}

// Cleanup closes the recorder client.
func (p *Plugin) Cleanup() error {
	if p.rec != nil {
		return p.rec.Close()
	}
	return nil
}

// record records the start of the execution, works for cfg.Work, and
// records its finish. A failed record fails the task, so asynq retries it:
// an execution is never unrecorded.
func (p *Plugin) record(ctx context.Context, a Args) error {
	if err := p.note(ctx, "S", len(a.Pad)); err != nil {
		return err
	}
	if p.cfg.Work > 0 {
		t := time.NewTimer(p.cfg.Work)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	return p.note(ctx, "F", len(a.Pad))
}

func (p *Plugin) note(ctx context.Context, kind string, pad int) error {
	id, _ := asynq.GetTaskID(ctx)
	retry, _ := asynq.GetRetryCount(ctx)
	entry := fmt.Sprintf("%s %s %d %d %d %d", kind, id, p.pid, time.Now().UnixNano(), retry, pad)
	// The recorder never goes away, so a background context is right: a
	// task cancelled after this point has still done its side effect.
	if err := p.rec.RPush(context.Background(), RecordKey, entry).Err(); err != nil {
		return fmt.Errorf("chaos: record %s: %w", id, err)
	}
	return nil
}

func main() { taskhostcmd.Main() }
