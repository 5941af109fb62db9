package taskhostcmd

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/connerr"
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
	fs.StringVar(&a.id, "id", "", "task `ID` (default: generated)")
	fs.DurationVar(&a.unique, "unique", 0, "refuse duplicates of this task for this `TTL`")
	fs.IntVar(&a.maxRetry, "max-retry", -1, "maximum retries (`n`; default: the worker's worker.max_retry)")
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
func (a *enqueueArgs) options() ([]asynq.Option, error) {
	var opts []asynq.Option
	if a.queue != "" {
		opts = append(opts, asynq.Queue(a.queue))
	}
	if a.id != "" {
		opts = append(opts, asynq.TaskID(a.id))
	}
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
	client := asynq.NewClientFromRedisClient(rdb)
	ectx, cancel := context.WithTimeout(ctx, enqueueTimeout)
	defer cancel()
	var span trace.Span
	if tr != nil {
		headers := map[string]string{}
		ectx, span = tr.StartSend(ectx, tracing.SourceCLI, a.taskType, a.queueName(), a.id, headers)
		task = asynq.NewTaskWithHeaders(a.taskType, []byte(a.payload), headers)
	}
	info, err := client.EnqueueContext(ectx, task, opts...)
	if span != nil {
		id := ""
		if info != nil {
			id = info.ID
		}
		tracing.EndSend(span, id, false, err)
	}
	switch {
	case err == nil:
	case connerr.Down(err):
		fmt.Fprintf(stderr, "worker enqueue: Redis (%s) is unreachable, the task was not enqueued: %v\n",
			cfg.Redis.Target(), err)
		return ExitFailure
	case errors.Is(err, asynq.ErrTaskIDConflict):
		fmt.Fprintf(stderr, "worker enqueue: -id %s: %v\n", a.id, err)
		return ExitFailure
	default:
		fmt.Fprintf(stderr, "worker enqueue: %v\n", err)
		return ExitFailure
	}
	if span != nil {
		fmt.Fprintf(stdout, "id=%s queue=%s state=%s trace_id=%s\n", info.ID, info.Queue, info.State, span.SpanContext().TraceID())
		return ExitOK
	}
	fmt.Fprintf(stdout, "id=%s queue=%s state=%s\n", info.ID, info.Queue, info.State)
	return ExitOK
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
