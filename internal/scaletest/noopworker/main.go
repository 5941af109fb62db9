// Command noopworker is the stock worker (taskhostcmd.Main with the
// built-in plugins) plus the test plugin "s8-noop", which handles s8:noop
// tasks by recording each run in a separate Redis: HINCRBY s8:runs <task
// ID> 1 and HINCRBY s8:byproc <pid> 1, in one round trip. The many-workers
// test in internal/scaletest builds and runs it to check exactly-once
// delivery across processes. It is test tooling, not a product binary.
//
// Config (plugins.s8-noop):
//
//	record_addr: 127.0.0.1:port   # the recording Redis
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	taskhostcmd "github.com/taskhost/taskhost/cmd"
	"github.com/taskhost/taskhost/plugins"
	_ "github.com/taskhost/taskhost/plugins/all"
)

// Names shared with the test.
const (
	pluginID = "s8-noop"
	taskType = "s8:noop"
	runsKey  = "s8:runs"
	procKey  = "s8:byproc"
)

func init() { plugins.Register(&noop{}) }

// noop records each run; it reaches its recording Redis directly, because
// that Redis is the test's instrument, not the worker's.
type noop struct {
	rec *redis.Client
}

var (
	_ plugins.Provisioner  = (*noop)(nil)
	_ plugins.CleanerUpper = (*noop)(nil)
)

func (*noop) PluginInfo() plugins.Info {
	return plugins.Info{ID: pluginID, New: func() plugins.Plugin { return &noop{} }}
}

func (n *noop) Provision(_ context.Context, h plugins.Host) error {
	var cfg struct {
		RecordAddr string `koanf:"record_addr"`
	}
	if err := h.DecodeConfig(&cfg); err != nil {
		return err
	}
	if cfg.RecordAddr == "" {
		return fmt.Errorf("plugins.%s.record_addr is required", pluginID)
	}
	n.rec = redis.NewClient(&redis.Options{Addr: cfg.RecordAddr, PoolSize: 64,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
	pid := strconv.Itoa(os.Getpid())
	h.HandleFunc(taskType, func(ctx context.Context, _ *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		_, err := n.rec.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.HIncrBy(ctx, runsKey, id, 1)
			p.HIncrBy(ctx, procKey, pid, 1)
			return nil
		})
		return err
	})
	return nil
}

func (n *noop) Cleanup() error {
	if n.rec != nil {
		return n.rec.Close()
	}
	return nil
}

func main() { taskhostcmd.Main() }
