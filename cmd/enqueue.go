package taskhostcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/config"
	"github.com/taskhost/taskhost/internal/connerr"
	"github.com/taskhost/taskhost/internal/outbox"
	"github.com/taskhost/taskhost/internal/redisconn"
	"github.com/taskhost/taskhost/internal/tracing"
)

// enqueueArgs are the flags of `worker enqueue`.
type enqueueArgs struct {
	taskType, payload, queue, id string
	in, unique                   time.Duration
	at                           string
	maxRetry                     int
	path                         string
	dev                          bool
	strict                       bool
}

func parseEnqueue(args []string, stderr io.Writer) (*enqueueArgs, *flag.FlagSet, error) {
	a := &enqueueArgs{}
	fs := flag.NewFlagSet("worker enqueue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&a.taskType, "type", "", "task `type` (required)")
	fs.StringVar(&a.payload, "payload", "{}", "task payload, a JSON `document`")
	fs.StringVar(&a.queue, "queue", "", "queue `name` (default: asynq's default queue)")
	fs.DurationVar(&a.in, "in", 0, "process after this `duration`")
	fs.StringVar(&a.at, "at", "", "process at this `time` (RFC 3339)")
	fs.StringVar(&a.id, "id", "", "task `ID` (default: a UUID, printed before the task is sent)")
	fs.DurationVar(&a.unique, "unique", 0, "refuse duplicates of this task for this `TTL`")
	fs.IntVar(&a.maxRetry, "max-retry", 0, "maximum retries (`n`, 0-1000; default: the worker's worker.max_retry)")
	fs.StringVar(&a.path, "config", "./config.yaml", "config file `path`")
	fs.BoolVar(&a.dev, "dev", false, "use the -dev worker's embedded Redis at redis.embedded.addr")
	fs.BoolVar(&a.strict, "strict", false, "refuse a task type that no enabled, compiled-in plugin handles (exit 2), instead of warning")
	if err := fs.Parse(args); err != nil {
		return nil, fs, err
	}
	if fs.NArg() > 0 {
		return nil, fs, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if a.taskType == "" {
		return nil, fs, errors.New("-type is required")
	}
	if !json.Valid([]byte(a.payload)) {
		var v any
		err := json.Unmarshal([]byte(a.payload), &v)
		return nil, fs, fmt.Errorf("-payload is not valid JSON: %v", err)
	}
	if a.in != 0 && a.at != "" {
		return nil, fs, errors.New("-in and -at cannot both be set")
	}
	if a.in < 0 || a.unique < 0 {
		return nil, fs, errors.New("-in and -unique must not be negative")
	}
	return a, fs, nil
}

// options turns the flags into asynq options; the task type's defaults and
// worker.max_retry fill in what they leave unset (taskTypeCheck.options).
// a.id must be set.
func (a *enqueueArgs) options() ([]asynq.Option, error) {
	var opts []asynq.Option
	if a.queue != "" {
		opts = append(opts, asynq.Queue(a.queue))
	}
	opts = append(opts, asynq.TaskID(a.id))
	if a.in > 0 {
		opts = append(opts, asynq.ProcessIn(a.in))
	}
	if a.at != "" {
		t, err := time.Parse(time.RFC3339, a.at)
		if err != nil {
			return nil, fmt.Errorf("-at: %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", a.at)
		}
		opts = append(opts, asynq.ProcessAt(t))
	}
	if a.unique > 0 {
		opts = append(opts, asynq.Unique(a.unique))
	}
	if a.maxRetry >= 0 {
		opts = append(opts, asynq.MaxRetry(a.maxRetry))
	}
	return opts, nil
}

// enqueueTimeout bounds the enqueue, so that an unreachable Redis fails the
// command in about a second rather than hanging it.
const enqueueTimeout = 2 * time.Second

// quietRedis sets go-redis' process-wide logger once.
var quietRedis sync.Once

func runEnqueue(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a, fs, err := parseEnqueue(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		if fs != nil && !isFlagError(err) {
			fmt.Fprintf(stderr, "worker enqueue: %v\n", err)
		}
		return ExitUsage
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := taskhost.LoadConfig(taskhost.LoadOptions{Path: a.path, PathExplicit: explicit, Dev: a.dev})
	if err != nil {
		fmt.Fprintf(stderr, "worker enqueue: config: %v\n", err)
		return ExitUsage
	}
	if err := a.checkBounds(fs, cfg); err != nil {
		fmt.Fprintf(stderr, "worker enqueue: %v\n", err)
		return ExitUsage
	}
	if a.id == "" {
		a.id = uuid.NewString()
	}
	flagOpts, err := a.options()
	if err != nil {
		fmt.Fprintf(stderr, "worker enqueue: %v\n", err)
		return ExitUsage
	}
	task := asynq.NewTask(a.taskType, []byte(a.payload))
	check := checkTaskType(ctx, cfg, a.taskType)
	if msg := check.problem(a.taskType, a.path); msg != "" {
		if a.strict {
			fmt.Fprintf(stderr, "worker enqueue: %s; not enqueued (-strict)\n", msg)
			return ExitUsage
		}
		fmt.Fprintf(stderr, "worker enqueue: warning: %s\n", msg)
	}
	opts := check.options(task, flagOpts, cfg.Worker.MaxRetry)
	quietRedis.Do(func() {
		// go-redis would print each failed dial itself; the error below says it once.
		redis.SetLogger(redisconn.LibraryLogger(slog.New(slog.DiscardHandler)))
	})
	tr, stopTracing, err := enqueueTracer(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "worker enqueue: config: %v\n", err)
		return ExitUsage
	}
	defer stopTracing()
	rdb, err := taskhost.NewRedisClient(cfg.Redis, nil)
	if err != nil {
		fmt.Fprintf(stderr, "worker enqueue: %v\n", err)
		return ExitUsage
	}
	defer rdb.Close()
	sent := &sentHook{}
	rdb.AddHook(sent)
	client := asynq.NewClientFromRedisClient(rdb)
	ectx, cancel := context.WithTimeout(ctx, enqueueTimeout)
	defer cancel()
	var span trace.Span
	if tr != nil {
		headers := map[string]string{}
		ectx, span = tr.StartSend(ectx, tracing.SourceCLI, a.taskType, a.queueName(), a.id, headers)
		task = asynq.NewTaskWithHeaders(a.taskType, []byte(a.payload), headers)
	}
	// The ID goes out before the task does, so that a caller who loses the
	// answer (a timeout, a killed process) can retry with -id: the line is
	// finished once the outcome is known.
	fmt.Fprintf(stdout, "id=%s", a.id)
	info, err := client.EnqueueContext(ectx, task, opts...)
	if span != nil {
		id := ""
		if info != nil {
			id = info.ID
		}
		tracing.EndSend(span, id, false, err)
	}
	if err != nil {
		fmt.Fprintln(stdout)
	}
	switch {
	case err == nil:
	case connerr.Down(err) && sent.script.Load():
		fmt.Fprintf(stderr, "worker enqueue: the outcome is unknown: the task was sent to Redis (%s) but no answer came (%v); "+
			"it may be enqueued. Retry with -id %s: a retry cannot enqueue it twice\n", cfg.Redis.Target(), err, a.id)
		return ExitUnknown
	case connerr.Down(err):
		fmt.Fprintf(stderr, "worker enqueue: Redis (%s) is unreachable, the task (id %s) was not enqueued: %v\n",
			cfg.Redis.Target(), a.id, err)
		return ExitFailure
	case errors.Is(err, asynq.ErrTaskIDConflict):
		fmt.Fprintf(stderr, "worker enqueue: -id %s: %v\n", a.id, err)
		return ExitFailure
	default:
		fmt.Fprintf(stderr, "worker enqueue: %v\n", err)
		return ExitFailure
	}
	if span != nil {
		fmt.Fprintf(stdout, " queue=%s state=%s trace_id=%s\n", info.Queue, info.State, span.SpanContext().TraceID())
		return ExitOK
	}
	fmt.Fprintf(stdout, " queue=%s state=%s\n", info.Queue, info.State)
	return ExitOK
}

// checkBounds checks -max-retry, when given, against worker.max_retry's
// range, and -payload against worker.max_payload_bytes.
func (a *enqueueArgs) checkBounds(fs *flag.FlagSet, cfg taskhost.Config) error {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "max-retry" })
	if given {
		c := cfg
		c.Worker.MaxRetry = a.maxRetry
		var ce *config.Error
		if err := c.Validate(); errors.As(err, &ce) {
			for _, p := range ce.Problems {
				if p.Key == "worker.max_retry" {
					return fmt.Errorf("-max-retry: %s", p.Message)
				}
			}
		}
	} else {
		a.maxRetry = -1
	}
	if err := outbox.CheckPayload(asynq.NewTask(a.taskType, []byte(a.payload)), cfg.Worker.MaxPayloadBytes); err != nil {
		return fmt.Errorf("-payload: %w", err)
	}
	return nil
}

// sentHook notes whether a script command (asynq's enqueue is a Lua script)
// was written to a connection: if it was, Redis may have run it even though
// no answer came back, so the outcome is unknown. A failure before that
// (dialing, the handshake, a pool wait) means nothing was enqueued.
type sentHook struct{ script atomic.Bool }

func (h *sentHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cn, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &sniffConn{Conn: cn, sent: &h.script}, nil
	}
}

func (h *sentHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *sentHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// sniffConn marks sent before it writes a command that runs a script.
type sniffConn struct {
	net.Conn
	sent *atomic.Bool
}

func (c *sniffConn) Write(p []byte) (int, error) {
	if !c.sent.Load() {
		lower := bytes.ToLower(p)
		if bytes.Contains(lower, []byte("\r\nevalsha\r\n")) || bytes.Contains(lower, []byte("\r\neval\r\n")) {
			c.sent.Store(true)
		}
	}
	return c.Conn.Write(p)
}

// queueName is -queue, or asynq's default queue.
func (a *enqueueArgs) queueName() string {
	if a.queue == "" {
		return "default"
	}
	return a.queue
}

// enqueueTracer builds the tracer of `worker enqueue` when the OTEL_*
// environment or tracing.enabled turn tracing on: its span is the parent of
// the handler's. stop exports the span, waiting at most a couple of
// seconds. With tracing off it returns a nil tracer and builds nothing.
func enqueueTracer(ctx context.Context, cfg taskhost.Config, stderr io.Writer) (*tracing.Tracer, func(), error) {
	s, err := tracing.Resolve(os.Environ(), cfg.Tracing.Enabled, false)
	if err != nil || !s.Enabled {
		return nil, func() {}, err
	}
	// Only export failures are worth a line on a command's stderr.
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := tracing.Start(ctx, s, tracing.Options{Logger: log, Version: Version})
	if err != nil {
		return nil, func() {}, err
	}
	return p.Tracer(), func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = p.Shutdown(sctx)
	}, nil
}

// isFlagError reports errors the flag package has already printed.
func isFlagError(err error) bool {
	for _, p := range []string{"flag provided but not defined", "invalid value", "bad flag syntax", "flag needs an argument"} {
		if strings.Contains(err.Error(), p) {
			return true
		}
	}
	return false
}
