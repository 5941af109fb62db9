package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	taskhostcmd "github.com/taskhost/taskhost/cmd"
	"github.com/taskhost/taskhost/internal/redistest"
)

// How the taskhost side runs (-taskhost).
const (
	// modeBinary runs taskhost as users run it: the worker command (this
	// binary re-executed with workerFlag, which is taskhostcmd.Run with
	// the bench plugin compiled in, as a user's worker binary has its
	// plugins) on a config file that sets only the Redis URL, the health
	// address, the concurrency and the plugin; its log (info, text) goes
	// to a file. Both sides' stderr go to files in this mode.
	modeBinary = "binary"
	// modeLibrary builds the runtime with runtime.New in the child, logs
	// to io.Discard, and a task rate limit on an unrelated type so that
	// the rate limit middleware is in the chain.
	modeLibrary = "library"
)

// workerFlag, as the first argument, runs the binary as the worker
// command: the bench plugin plus taskhostcmd.Run.
const workerFlag = "-worker"

func workerMain(ctx context.Context, args []string) int {
	return taskhostcmd.Run(ctx, args, os.Stdout, os.Stderr)
}

// startChild starts the worker of spec.side, named name, as -taskhost says.
func (h *harness) startChild(name string, spec childSpec) (*child, error) {
	if h.opts.taskhostMode == modeLibrary {
		return startChild(h.exe, name, spec)
	}
	base := filepath.Join(h.workDir, fmt.Sprintf("r%d-%s", h.round, strings.ReplaceAll(name, " ", "-")))
	if spec.side == sideBare {
		return startProcess(h.exe, name, spec.args(), base+".log")
	}
	port, err := redistest.FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cfgPath := base + ".yaml"
	if err := os.WriteFile(cfgPath, []byte(binaryConfig(spec, addr)), 0o600); err != nil {
		return nil, err
	}
	c, err := startProcess(h.exe, name, []string{workerFlag, "-config", cfgPath}, base+".log")
	if err != nil {
		return nil, err
	}
	c.binary, c.health = true, addr
	return c, nil
}

// binaryConfig is the worker's config file in binary mode: the defaults,
// except what the harness must set. Strings are JSON-quoted, which YAML
// reads as they are.
func binaryConfig(spec childSpec, healthAddr string) string {
	return fmt.Sprintf(`# written by cmd/bench: the defaults but for these keys
redis:
  url: %q
health:
  addr: %q
worker:
  concurrency: %d
  queues:
    %s: 1
plugins:
  %s:
    n: %d
    record: %t
    cpuprofile: %q
`, spec.redisURL, healthAddr, spec.concurrency, queueName, pluginID, spec.n, spec.record, spec.cpuProfile)
}

// awaitReady waits up to d for the worker command's /readyz to answer 200.
func (c *child) awaitReady(d time.Duration) (event, error) {
	deadline := time.Now().Add(d)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			return event{}, fmt.Errorf("%s: worker exited before ready: %v: %s", c.name, c.err, c.stderrText())
		default:
		}
		resp, err := client.Get("http://" + c.health + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return event{Event: "ready", PID: c.pid(), Health: c.health}, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return event{}, fmt.Errorf("%s: not ready within %s; its log: %s", c.name, d, c.stderrText())
}

// logBytes is the size of the child's log file; 0 without one.
func (c *child) logBytes() int64 {
	if c.logPath == "" {
		return 0
	}
	fi, err := os.Stat(c.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}
