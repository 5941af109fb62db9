package chaostest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is one child process, started again after each kill with the same
// arguments. It remembers every exit and whether the test caused it.
type proc struct {
	name    string
	bin     string
	args    []string
	env     []string
	dir     string
	logPath string // stdout and stderr of every instance, appended

	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{}
	exitCode   int
	signalled  bool     // the test signalled the current instance
	mayFinish  bool     // an exit with code 0 is the process's normal end
	unexpected []string // exits the test did not cause
}

func newProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	p := &proc{
		name: name, bin: bin, args: args, dir: dir,
		logPath: dir + "/" + name + ".log",
		// An explicit environment: the child reads no REDIS_URL or
		// HEALTH_ADDR of the machine's.
		env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir},
	}
	t.Cleanup(p.killForCleanup)
	return p
}

// start starts a new instance; the previous one must have exited.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s: still running", p.name)
		}
	}
	logf, err := os.OpenFile(p.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== %s start %s\n", p.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = p.env, p.dir, logf, logf
	// Its own process group, and SIGKILL if the test process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%s: start: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.signalled, p.exitCode = cmd, done, false, -1
	go func() {
		err := cmd.Wait()
		logf.Close()
		code := cmd.ProcessState.ExitCode() // -1 when killed by a signal
		p.mu.Lock()
		p.exitCode = code
		if !p.signalled && !(p.mayFinish && code == 0) {
			p.unexpected = append(p.unexpected, fmt.Sprintf("%s (pid %d) exited on its own at %s: %v",
				p.name, cmd.Process.Pid, time.Now().Format("15:04:05.000"), err))
		}
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// pid is the current instance's process ID.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// signal sends sig to the current instance and marks its exit as caused by
// the test. It returns the instance's PID.
func (p *proc) signal(sig syscall.Signal) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0, fmt.Errorf("%s: not started", p.name)
	}
	p.signalled = true
	return p.cmd.Process.Pid, p.cmd.Process.Signal(sig)
}

// wait waits up to d for the current instance to exit and returns its exit
// code (-1 after a signal it did not handle).
func (p *proc) wait(d time.Duration) (int, error) {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return 0, fmt.Errorf("%s: not started", p.name)
	}
	select {
	case <-done:
	case <-time.After(d):
		return 0, fmt.Errorf("%s: still running after %s", p.name, d)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitCode, nil
}

// running reports whether the current instance has not exited.
func (p *proc) running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// kill SIGKILLs the current instance and waits for it; it returns its PID.
func (p *proc) kill() (int, error) {
	pid, err := p.signal(syscall.SIGKILL)
	if err != nil {
		return pid, err
	}
	_, err = p.wait(10 * time.Second)
	return pid, err
}

// unexpectedExits lists the exits the test did not cause.
func (p *proc) unexpectedExits() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.unexpected...)
}

func (p *proc) killForCleanup() {
	if p.running() {
		_, _ = p.kill()
	}
}

// logTail returns the last n bytes of the process's log, for failures.
func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
