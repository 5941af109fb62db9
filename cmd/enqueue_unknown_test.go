package taskhostcmd_test

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
)

// delayProxy forwards TCP between clients on 127.0.0.1 and target. Once a
// client has sent a script (EVALSHA or EVAL), the replies to that client are
// held back by delay: Redis has run the script, the client never hears.
type delayProxy struct {
	ln     net.Listener
	target string
	delay  time.Duration
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func startDelayProxy(t *testing.T, target string, delay time.Duration) *delayProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &delayProxy{ln: ln, target: target, delay: delay}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *delayProxy) addr() string { return p.ln.Addr().String() }

func (p *delayProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		var armed atomic.Bool
		p.wg.Add(2)
		go func() { // client -> Redis, at once
			defer p.wg.Done()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if bytes.Contains(bytes.ToLower(buf[:n]), []byte("\r\neval")) {
						armed.Store(true)
					}
					if _, werr := s.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					_ = s.Close()
					return
				}
			}
		}()
		go func() { // Redis -> client, late once armed
			defer p.wg.Done()
			buf := make([]byte, 64<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 {
					if armed.Load() {
						time.Sleep(p.delay)
					}
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					_ = c.Close()
					return
				}
			}
		}()
	}
}

func (p *delayProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestEnqueueOutcomeUnknown: the reply to the enqueue script does not come
// back in time, yet Redis ran it. The command exits 3 (not 1, which scripts
// retry blindly), its message holds the task ID it printed before sending,
// and a retry with that -id does not make a duplicate.
func TestEnqueueOutcomeUnknown(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	direct := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = direct.Close() })
	// Load asynq's enqueue script, so that the EVALSHA through the proxy runs.
	_, err := asynq.NewClientFromRedisClient(direct).Enqueue(asynq.NewTask("warm", nil), asynq.Queue("warm"))
	require.NoError(t, err)

	p := startDelayProxy(t, s.Addr(), 1500*time.Millisecond)
	begin := time.Now()
	code, out, errOut := enqueueCLI(t, configFile(t, "redis://"+p.addr()+"/0"), "-type", "t:unknown", "-payload", `{"n":1}`)
	require.Less(t, time.Since(begin), 3*time.Second)
	require.Equal(t, 3, code, errOut)
	id := strings.TrimSpace(strings.TrimPrefix(out, "id="))
	require.Regexp(t, `^[0-9a-f-]{36}$`, id, "stdout: %q", out)
	require.Contains(t, errOut, "the outcome is unknown")
	require.Contains(t, errOut, "Retry with -id "+id)

	in := asynq.NewInspectorFromRedisClient(direct)
	info, err := in.GetTaskInfo("default", id)
	require.NoError(t, err, "Redis ran the script")
	require.Equal(t, "t:unknown", info.Type)

	// The retry the message asks for: refused by ID, no duplicate.
	code, _, errOut = enqueueCLI(t, configFile(t, s.URL()), "-type", "t:unknown", "-payload", `{"n":1}`, "-id", id)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, asynq.ErrTaskIDConflict.Error())
	tasks, err := in.ListPendingTasks("default")
	require.NoError(t, err)
	require.Len(t, tasks, 1)
}
