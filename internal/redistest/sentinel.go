package redistest

import (
	"context"
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
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelOptions configure StartSentinel. The zero value gives a master
// named "mymaster" without passwords and fast failover settings.
type SentinelOptions struct {
	// MasterName is the name the sentinels monitor; "mymaster" when empty.
	MasterName string
	// Data configures the master and the replica (AOF, Password, Args).
	// Its Port and Dir must be zero. A Password is also set as masterauth
	// on both, and as auth-pass in the sentinels.
	Data Options
	// SentinelPassword sets requirepass on the sentinels themselves.
	SentinelPassword string
	// DownAfter is down-after-milliseconds; 1s when zero.
	DownAfter time.Duration
	// FailoverTimeout is failover-timeout; 3s when zero.
	FailoverTimeout time.Duration
}

// Sentinel is one master, one replica and three sentinels (quorum 2), all
// on 127.0.0.1. Everything announces 127.0.0.1, so clients can follow a
// failover on this machine.
type Sentinel struct {
	opts SentinelOptions

	mu        sync.Mutex
	master    *Server
	replica   *Server
	sentinels []*process
}

// NewSentinel starts the master, the replica and the sentinels, and waits
// until the replica is in sync and every sentinel knows the replica and the
// two other sentinels, so that a failover can start at once. Close stops it.
func NewSentinel(opts SentinelOptions) (*Sentinel, error) {
	if opts.Data.Port != 0 || opts.Data.Dir != "" {
		return nil, errors.New("redistest: SentinelOptions.Data must not set Port or Dir")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, ErrNoRedisServer
	}
	if opts.MasterName == "" {
		opts.MasterName = "mymaster"
	}
	if opts.DownAfter <= 0 {
		opts.DownAfter = time.Second
	}
	if opts.FailoverTimeout <= 0 {
		opts.FailoverTimeout = 3 * time.Second
	}
	s := &Sentinel{opts: opts}
	if err := s.start(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// StartSentinel starts a Sentinel for the test and stops it in t.Cleanup.
// It fails the test, with install instructions, when redis-server is missing.
func StartSentinel(t testing.TB, opts ...SentinelOptions) *Sentinel {
	t.Helper()
	var o SentinelOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	s, err := NewSentinel(o)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func (s *Sentinel) dataOptions(extra ...string) Options {
	o := s.opts.Data
	o.Args = append([]string{"--replica-announce-ip", "127.0.0.1",
		"--repl-diskless-sync-delay", "0"}, o.Args...) // the replica syncs at once, not after 5s
	if o.Password != "" {
		o.Args = append(o.Args, "--masterauth", o.Password)
	}
	o.Args = append(o.Args, extra...)
	return o
}

func (s *Sentinel) start() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	master, err := New(s.dataOptions())
	if err != nil {
		return err
	}
	s.master = master
	replica, err := New(s.dataOptions("--replicaof", "127.0.0.1", strconv.Itoa(master.Port())))
	if err != nil {
		return err
	}
	s.replica = replica
	if err := waitReplicaOnline(ctx, master, replica, s.opts.Data.Password); err != nil {
		return err
	}
	for i := 0; i < 3; i++ {
		p, err := s.startSentinel(i)
		if err != nil {
			return err
		}
		s.sentinels = append(s.sentinels, p)
	}
	return s.waitSentinelsReady(ctx)
}

func (s *Sentinel) sentinelConf(port int, dir string) string {
	o := s.opts
	var b strings.Builder
	fmt.Fprintf(&b, "port %d\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\n", port)
	fmt.Fprintf(&b, "dir %s\nlogfile %s\n", dir, filepath.Join(dir, "sentinel.log"))
	fmt.Fprintf(&b, "sentinel announce-ip 127.0.0.1\nsentinel announce-port %d\n", port)
	fmt.Fprintf(&b, "sentinel monitor %s 127.0.0.1 %d 2\n", o.MasterName, s.master.Port())
	fmt.Fprintf(&b, "sentinel down-after-milliseconds %s %d\n", o.MasterName, o.DownAfter.Milliseconds())
	fmt.Fprintf(&b, "sentinel failover-timeout %s %d\n", o.MasterName, o.FailoverTimeout.Milliseconds())
	fmt.Fprintf(&b, "sentinel parallel-syncs %s 1\n", o.MasterName)
	if o.Data.Password != "" {
		fmt.Fprintf(&b, "sentinel auth-pass %s %s\n", o.MasterName, o.Data.Password)
	}
	if o.SentinelPassword != "" {
		fmt.Fprintf(&b, "requirepass %s\n", o.SentinelPassword)
	}
	return b.String()
}

func (s *Sentinel) startSentinel(i int) (*process, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp("", fmt.Sprintf("redistest-sentinel%d-", i))
		if err != nil {
			return nil, fmt.Errorf("redistest: temp dir: %w", err)
		}
		conf := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(conf, []byte(s.sentinelConf(port, dir)), 0o600); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("redistest: write sentinel.conf: %w", err)
		}
		p, err := startProcess(port, dir, "sentinel.log", s.opts.SentinelPassword, conf, "--sentinel")
		if err == nil {
			return p, nil
		}
		_ = os.RemoveAll(dir)
		lastErr = err
	}
	return nil, lastErr
}

// waitSentinelsReady waits until every sentinel sees the master up, the
// replica, and the two other sentinels.
func (s *Sentinel) waitSentinelsReady(ctx context.Context) error {
	var last string
	for _, p := range s.sentinels {
		sc := s.sentinelClient(p.addr())
		err := poll(ctx, func() bool {
			m, err := sc.Master(ctx, s.opts.MasterName).Result()
			if err != nil {
				last = err.Error()
				return false
			}
			last = fmt.Sprintf("flags=%s num-slaves=%s num-other-sentinels=%s",
				m["flags"], m["num-slaves"], m["num-other-sentinels"])
			return m["flags"] == "master" && m["num-slaves"] == "1" && m["num-other-sentinels"] == "2"
		})
		_ = sc.Close()
		if err != nil {
			return fmt.Errorf("redistest: sentinel %s not ready (%s): %w; log: %s", p.addr(), last, err, p.logTail())
		}
	}
	return nil
}

func (s *Sentinel) sentinelClient(addr string) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{
		Addr: addr, Password: s.opts.SentinelPassword,
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 500 * time.Millisecond,
		WriteTimeout: 500 * time.Millisecond, MaxRetries: -1,
	})
}

// MasterName is the name the sentinels monitor.
func (s *Sentinel) MasterName() string { return s.opts.MasterName }

// SentinelAddrs are the sentinels' "127.0.0.1:port" addresses.
func (s *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(s.sentinels))
	for i, p := range s.sentinels {
		addrs[i] = p.addr()
	}
	return addrs
}

// Master is the server the fixture last saw as master: the one started as
// master until WaitFailover returns, the promoted replica after it.
func (s *Sentinel) Master() *Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.master
}

// Replica is the other data server: the one started as replica until
// WaitFailover returns, the old (killed) master after it.
func (s *Sentinel) Replica() *Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replica
}

// KillMaster sends SIGKILL to the current master and waits for it to exit,
// so that the sentinels start a failover after DownAfter.
func (s *Sentinel) KillMaster() { s.Master().Kill() }

// WaitFailover waits until a sentinel names the replica as the new master
// and the replica answers ROLE as master. It returns the new master's
// address. Without a deadline on ctx it gives up after 30s.
func (s *Sentinel) WaitFailover(ctx context.Context) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	s.mu.Lock()
	oldMaster, candidate := s.master, s.replica
	s.mu.Unlock()
	clients := make([]*redis.SentinelClient, len(s.sentinels))
	for i, p := range s.sentinels {
		clients[i] = s.sentinelClient(p.addr())
	}
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	data := adminClient(candidate.Addr(), s.opts.Data.Password)
	defer data.Close()

	var newAddr string
	err := poll(ctx, func() bool {
		for _, c := range clients {
			hp, err := c.GetMasterAddrByName(ctx, s.opts.MasterName).Result()
			if err != nil || len(hp) != 2 {
				continue
			}
			addr := net.JoinHostPort(hp[0], hp[1])
			if addr == oldMaster.Addr() {
				continue
			}
			role, err := data.Do(ctx, "ROLE").Slice()
			if err != nil || len(role) == 0 || role[0] != "master" {
				return false
			}
			newAddr = addr
			return true
		}
		return false
	})
	if err != nil {
		var logs []string
		for _, p := range s.sentinels {
			logs = append(logs, p.logTail())
		}
		return "", fmt.Errorf("redistest: no failover of %q: %w; sentinel logs: %s",
			s.opts.MasterName, err, strings.Join(logs, " | "))
	}
	if newAddr != candidate.Addr() {
		return "", fmt.Errorf("redistest: sentinels promoted %s, not the replica %s", newAddr, candidate.Addr())
	}
	s.mu.Lock()
	s.master, s.replica = candidate, oldMaster
	s.mu.Unlock()
	return newAddr, nil
}

// Close stops the sentinels, then the data servers, and removes their
// temporary directories.
func (s *Sentinel) Close() {
	for _, p := range s.sentinels {
		p.stop()
	}
	s.mu.Lock()
	master, replica := s.master, s.replica
	s.mu.Unlock()
	for _, srv := range []*Server{master, replica} {
		if srv != nil {
			srv.Close()
		}
	}
}

// waitReplicaOnline waits until the master lists the replica as online and
// the replica reports its link to the master as up.
func waitReplicaOnline(ctx context.Context, master, replica *Server, password string) error {
	mc := adminClient(master.Addr(), password)
	defer mc.Close()
	rc := adminClient(replica.Addr(), password)
	defer rc.Close()
	want := fmt.Sprintf("port=%d,state=online", replica.Port())
	err := poll(ctx, func() bool {
		mi, err := mc.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(mi, want) {
			return false
		}
		ri, err := rc.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(ri, "master_link_status:up")
	})
	if err != nil {
		return fmt.Errorf("redistest: replica %s not in sync with %s: %w; log: %s",
			replica.Addr(), master.Addr(), err, replica.logTail())
	}
	return nil
}

// adminClient is a go-redis client with short timeouts and no retries, for
// the fixtures' own commands.
func adminClient(addr, password string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: addr, Password: password,
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 500 * time.Millisecond,
		WriteTimeout: 500 * time.Millisecond, MaxRetries: -1, PoolSize: 2,
	})
}

// poll calls cond every 50ms until it returns true or ctx ends.
func poll(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// process is a redis-server started with a config file (a sentinel), which
// Server cannot do because the config file must be the first argument.
type process struct {
	port    int
	dir     string
	logName string
	cmd     *exec.Cmd
	done    chan struct{}
}

func startProcess(port int, dir, logName, password string, args ...string) (*process, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNoRedisServer
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redistest: start %s: %w", bin, err)
	}
	p := &process{port: port, dir: dir, logName: logName, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	c := adminClient(p.addr(), password)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return nil, fmt.Errorf("redistest: redis-server %v exited at start on port %d: %s", args, port, p.logTail())
		default:
		}
		if c.Ping(context.Background()).Err() == nil {
			return p, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.kill()
	return nil, fmt.Errorf("redistest: redis-server %v on port %d did not answer PING within 10s: %s", args, port, p.logTail())
}

func (p *process) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

func (p *process) logTail() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, p.logName))
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return strings.TrimSpace(string(b))
}

func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// stop kills the process by PID and removes its directory.
func (p *process) stop() {
	p.kill()
	_ = os.RemoveAll(p.dir)
}
