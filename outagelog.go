package taskhost

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/connerr"
	"github.com/taskhost/taskhost/internal/redisconn"
)

// Folding asynq's lines during an outage: asynq logs an error for each
// failed dequeue, heartbeat, forward and scheduler beat, from every fetcher,
// for as long as Redis is down (17 lines in a 6 s outage). The monitor
// already reports the outage, once when it starts and once when it ends;
// asynq's repeats add nothing. So, for the components in foldedComponents:
//
//   - while Redis is not ready, each warning or error is logged at DEBUG and
//     counted; the monitor's "redis ready" line reports the count
//     (asynq_errors);
//   - while Redis is ready, a warning or error that follows a network error
//     on the runtime's Redis clients (seen by a hook) is held for holdFor:
//     if the monitor reports the outage meanwhile, the line was its first
//     sign and is folded too; if not, it is logged as it was, with its own
//     time;
//   - for graceAfter after an outage ends, such a line (a command that
//     failed before Redis came back) is logged at DEBUG.
//
// Everything else passes through.

// foldedComponents are the components whose outage lines are folded.
var foldedComponents = map[string]bool{"asynq": true, "scheduler": true}

const (
	// holdFor is how long a line that follows a network error waits for
	// the monitor: longer than a probe's timeout (1 s).
	holdFor = 2 * time.Second
	// netRecent is how recent a network error must be for a line to be held.
	netRecent = 2 * time.Second
	// graceAfter is how long after an outage a network line is still its echo.
	graceAfter = 2 * time.Second
)

// outageLog folds the lines; see above. It learns the state from the
// monitor's Annotate hook, and network errors from its client hook.
type outageLog struct {
	lastNet atomic.Int64 // UnixNano of the last network error on a client

	mu      sync.Mutex
	down    bool // Redis is not ready; true until the first ready
	folded  int  // lines folded in the current outage
	endedAt time.Time
	held    []heldLine
	timer   *time.Timer
}

type heldLine struct {
	h slog.Handler
	r slog.Record
}

func newOutageLog() *outageLog { return &outageLog{down: true} }

// handler wraps h so that the lines of the folded components are folded.
func (o *outageLog) handler(h slog.Handler) slog.Handler { return foldHandler{Handler: h, o: o} }

// annotate is the monitor's Annotate: it follows the state, folds the held
// lines into an outage that begins, and gives the ready line its count.
func (o *outageLog) annotate(from, to redisconn.State) []any {
	o.mu.Lock()
	defer o.mu.Unlock()
	if to == redisconn.Closed {
		o.releaseLocked()
		return nil
	}
	wasDown := o.down
	o.down = to != redisconn.Ready
	switch {
	case !wasDown && o.down: // an outage begins: what was held was its first sign
		o.folded += len(o.held)
		for _, l := range o.held {
			demote(context.Background(), l.h, l.r)
		}
		o.held = nil
		if o.timer != nil {
			o.timer.Stop()
			o.timer = nil
		}
	case wasDown && !o.down:
		n := o.folded
		o.folded, o.endedAt = 0, time.Now()
		if from != redisconn.Connecting || n > 0 {
			return []any{"asynq_errors", n}
		}
	}
	return nil
}

// handle decides what becomes of a warning or error of a folded component.
func (o *outageLog) handle(ctx context.Context, h slog.Handler, r slog.Record) error {
	recentNet := time.Since(time.Unix(0, o.lastNet.Load())) < netRecent
	o.mu.Lock()
	switch {
	case o.down:
		o.folded++
		o.mu.Unlock()
		return demote(ctx, h, r)
	case recentNet && time.Since(o.endedAt) < graceAfter:
		o.mu.Unlock()
		return demote(ctx, h, r)
	case recentNet:
		o.held = append(o.held, heldLine{h: h, r: r.Clone()})
		if o.timer == nil {
			o.timer = time.AfterFunc(holdFor, o.release)
		}
		o.mu.Unlock()
		return nil
	}
	o.mu.Unlock()
	return h.Handle(ctx, r)
}

// release logs the held lines as they were: no outage followed them.
func (o *outageLog) release() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.releaseLocked()
}

func (o *outageLog) releaseLocked() {
	if o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
	for _, l := range o.held {
		_ = l.h.Handle(context.Background(), l.r)
	}
	o.held = nil
}

// demote logs r at DEBUG, if h logs DEBUG.
func demote(ctx context.Context, h slog.Handler, r slog.Record) error {
	if !h.Enabled(ctx, slog.LevelDebug) {
		return nil
	}
	d := slog.NewRecord(r.Time, slog.LevelDebug, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool { d.AddAttrs(a); return true })
	return h.Handle(ctx, d)
}

// hook returns a go-redis hook that tells o of each network error.
func (o *outageLog) hook() redis.Hook { return netHook{o} }

type netHook struct{ o *outageLog }

func (h netHook) note(err error) {
	if connerr.Down(err) {
		h.o.lastNet.Store(time.Now().UnixNano())
	}
}

func (h netHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cn, err := next(ctx, network, addr)
		h.note(err)
		return cn, err
	}
}

func (h netHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.note(err)
		return err
	}
}

func (h netHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.note(err)
		return err
	}
}

// foldHandler passes the warnings and errors of the folded components to
// its outageLog; fold is set once a component attribute names one.
type foldHandler struct {
	slog.Handler
	o    *outageLog
	fold bool
}

func (f foldHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn || !(f.fold || recordFolded(r)) {
		return f.Handler.Handle(ctx, r)
	}
	return f.o.handle(ctx, f.Handler, r)
}

func (f foldHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	fold := f.fold
	for _, a := range attrs {
		fold = fold || (a.Key == "component" && foldedComponents[a.Value.String()])
	}
	return foldHandler{Handler: f.Handler.WithAttrs(attrs), o: f.o, fold: fold}
}

func (f foldHandler) WithGroup(name string) slog.Handler {
	return foldHandler{Handler: f.Handler.WithGroup(name), o: f.o, fold: f.fold}
}

// recordFolded reports whether a record names a folded component itself.
func recordFolded(r slog.Record) bool {
	fold := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "component" {
			fold = foldedComponents[a.Value.String()]
			return false
		}
		return true
	})
	return fold
}
