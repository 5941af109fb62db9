package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a worker process started by the harness.
type child struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan event
	stderr *tail
	exited chan struct{}
	err    error // of Wait, once exited is closed
	// started is when the process was started; ended, set before exited
	// is closed, when it was seen to exit.
	started, ended time.Time
	// binary is set for the worker command (binary mode): it is ready when
	// its /readyz on health answers 200, and stops on SIGTERM. logPath is
	// the file its stderr (the log) goes to; "" keeps a tail in memory.
	binary  bool
	health  string
	logPath string
}

// startChild re-executes exe as a child worker for spec.
func startChild(exe, name string, spec childSpec) (*child, error) {
	return startProcess(exe, name, spec.args(), "")
}

// startProcess starts exe with args; its stderr goes to logPath, or to an
// in-memory tail when logPath is "".
func startProcess(exe, name string, args []string, logPath string) (*child, error) {
	cmd := exec.Command(exe, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c := &child{name: name, cmd: cmd, events: make(chan event, 16), stderr: &tail{max: 4096}, exited: make(chan struct{}), logPath: logPath}
	cmd.Stderr = c.stderr
	if logPath != "" {
		f, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		defer f.Close() // the child holds its own descriptor
		cmd.Stderr = f
	}
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start child: %w", name, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e event
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				c.events <- e
			}
		}
		close(c.events)
		c.err = cmd.Wait()
		c.ended = time.Now()
		close(c.exited)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// lifetime is how long the process ran; call it after it exited.
func (c *child) lifetime() time.Duration { return c.ended.Sub(c.started) }

// await waits up to d for the event named want.
func (c *child) await(want string, d time.Duration) (event, error) {
	if c.binary && want == "ready" {
		return c.awaitReady(d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case e, ok := <-c.events:
			switch {
			case !ok:
				return e, fmt.Errorf("%s: child exited before %q: %s", c.name, want, c.stderrText())
			case e.Event == "error":
				return e, fmt.Errorf("%s: child: %s", c.name, e.Error)
			case e.Event == want:
				return e, nil
			}
		case <-t.C:
			return event{}, fmt.Errorf("%s: no %q from the child within %s; its stderr: %s", c.name, want, d, c.stderrText())
		}
	}
}

// stop closes the child's stdin (binary mode: sends SIGTERM), which stops
// its worker gracefully, and kills it after d.
func (c *child) stop(d time.Duration) error {
	_ = c.stdin.Close()
	if c.binary {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-c.exited:
	case <-time.After(d):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("%s: child did not stop within %s; killed", c.name, d)
	}
	if c.err != nil {
		return fmt.Errorf("%s: child: %w: %s", c.name, c.err, c.stderrText())
	}
	return nil
}

// stderrText is the end of the child's stderr: its log in binary mode.
func (c *child) stderrText() string {
	if c.logPath == "" {
		return c.stderr.String()
	}
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return err.Error()
	}
	const max = 4096
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return strings.TrimSpace(string(b))
}

// kill ends the child at once.
func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	<-c.exited
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// clockTicks is USER_HZ, the unit of CPU times in /proc/<pid>/stat; it is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procCPU is the user plus system CPU time of process pid, from
// /proc/<pid>/stat (10 ms resolution).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime or stime", pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// selfCPU is this process's CPU time, or 0 when /proc cannot be read.
func selfCPU() time.Duration {
	d, _ := procCPU(os.Getpid())
	return d
}

// procMem returns the resident set size and its peak (VmRSS, VmHWM) of
// process pid in bytes, from /proc/<pid>/status.
func procMem(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, val, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status: %s: %w", pid, name, err)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status: no VmRSS or VmHWM", pid)
	}
	return rss, hwm, nil
}
