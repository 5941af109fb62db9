package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// InstallHint is the message given when redis-server is not on PATH.
const InstallHint = "redis-server not found on PATH: install it with `sudo apt-get install -y redis-server` (Debian/Ubuntu) or run `make test`, which does it for you"

// ErrNoRedisServer is returned when the redis-server binary cannot be found.
var ErrNoRedisServer = errors.New(InstallHint)

// Options configure a server. The zero value is a server with no persistence.
type Options struct {
	// AOF turns on append-only persistence in the server's data directory.
	AOF bool
	// AppendFsync is "always", "everysec" or "no"; the default is "everysec".
	AppendFsync string
	// Password sets requirepass.
	Password string
	// Args are extra redis-server arguments, e.g. "--maxmemory", "10mb".
	Args []string
	// Dir is the data directory; a fresh temporary one when empty.
	Dir string
	// Port is the port to listen on; a free one when zero.
	Port int
}

// Server is one redis-server process on 127.0.0.1.
type Server struct {
	opts   Options
	port   int
	dir    string
	ownDir bool
	bin    string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// New starts a redis-server with opts and waits until it answers PING.
func New(opts Options) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNoRedisServer
	}
	s := &Server{opts: opts, bin: bin, dir: opts.Dir}
	if s.dir == "" {
		d, err := os.MkdirTemp("", "redistest-")
		if err != nil {
			return nil, fmt.Errorf("redistest: temp dir: %w", err)
		}
		s.dir, s.ownDir = d, true
	}
	var lastErr error
	release(opts.Port) // a port ClosedAddr reserved is handed over
	for attempt := 0; attempt < 5; attempt++ {
		s.port = opts.Port
		if s.port == 0 {
			if s.port, err = FreePort(); err != nil {
				return nil, err
			}
		}
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
		if opts.Port != 0 {
			break
		}
	}
	s.cleanupDir()
	return nil, lastErr
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("redistest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) args() []string {
	a := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--daemonize", "no",
		"--protected-mode", "no",
		"--logfile", filepath.Join(s.dir, "redis.log"),
	}
	if s.opts.AOF {
		fsync := s.opts.AppendFsync
		if fsync == "" {
			fsync = "everysec"
		}
		a = append(a, "--appendonly", "yes", "--appendfsync", fsync)
	} else {
		a = append(a, "--appendonly", "no")
	}
	if s.opts.Password != "" {
		a = append(a, "--requirepass", s.opts.Password)
	}
	return append(a, s.opts.Args...)
}

func (s *Server) start() error {
	cmd := exec.Command(s.bin, s.args()...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redistest: start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("redistest: redis-server exited at start on port %d: %s", s.port, s.logTail())
		default:
		}
		if s.ping() == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.signalAndWait(syscall.SIGKILL)
	return fmt.Errorf("redistest: redis-server on port %d did not answer PING within 10s: %s", s.port, s.logTail())
}

// ping sends a raw PING (authenticating when needed) and reads the reply.
func (s *Server) ping() error {
	c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	cmd := "PING\r\n"
	if s.opts.Password != "" {
		cmd = fmt.Sprintf("AUTH %s\r\nPING\r\n", s.opts.Password)
	}
	if _, err := c.Write([]byte(cmd)); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.HasPrefix(line, "+PONG") {
			return nil
		}
		if strings.HasPrefix(line, "-") {
			return errors.New(strings.TrimSpace(line))
		}
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return strings.TrimSpace(string(b))
}

// Addr is "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the TCP port the server listens on.
func (s *Server) Port() int { return s.port }

// Dir is the server's data directory.
func (s *Server) Dir() string { return s.dir }

// URL is a redis:// URL for the server, with the password when one is set.
func (s *Server) URL() string {
	if s.opts.Password != "" {
		return fmt.Sprintf("redis://:%s@%s/0", s.opts.Password, s.Addr())
	}
	return fmt.Sprintf("redis://%s/0", s.Addr())
}

// PID is the process ID, or 0 when the server is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *Server) signalAndWait(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // a paused process must be able to die
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	s.mu.Lock()
	if s.cmd == cmd {
		s.cmd = nil
	}
	s.mu.Unlock()
}

// Kill sends SIGKILL and waits for the process to exit. The data directory is kept.
func (s *Server) Kill() { s.signalAndWait(syscall.SIGKILL) }

// Pause freezes the process with SIGSTOP: connections are accepted by the
// kernel but nothing is answered.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused process with SIGCONT.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// Restart starts the server again on the same port and data directory,
// killing it first if it is still running. With AOF, the data survives.
func (s *Server) Restart() error {
	s.Kill()
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if err = s.start(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond) // the port may still be in TIME_WAIT use
	}
	return err
}

// Close stops the server and removes a temporary data directory.
func (s *Server) Close() {
	s.signalAndWait(syscall.SIGTERM)
	s.cleanupDir()
}

func (s *Server) cleanupDir() {
	if s.ownDir {
		_ = os.RemoveAll(s.dir)
	}
}
