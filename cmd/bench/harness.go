package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/redistest"
)

// run is the command: the harness, or with childFlag first, a child worker.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == childFlag {
		return childMain(ctx, args[1:], stdin, stdout, stderr)
	}
	if len(args) > 0 && args[0] == workerFlag {
		return workerMain(ctx, args[1:])
	}
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	if opts.printPath != "" {
		rep, err := readReport(opts.printPath)
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		printReport(stdout, rep)
		return 0
	}
	rep, err := runHarness(ctx, opts, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	printReport(stdout, rep)
	if err := writeJSON(opts.jsonPath, stdout, rep); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	return 0
}

func writeJSON(path string, stdout io.Writer, rep *Report) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// readReport reads a -json file and judges its targets again.
func readReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rep.Targets = targets(&rep, options{n: rep.Params.N, concurrency: rep.Params.Concurrency})
	return &rep, nil
}

// harness holds what every measurement shares.
type harness struct {
	opts     options
	exe      string
	url      string
	rdb      *redis.Client // FLUSHALL and INFO
	client   *asynq.Client // pre-fill, the latency stream, bare enqueues
	asynqOpt asynq.RedisConnOpt
	insp     *asynq.Inspector // checks that queues are as expected
	ownRedis bool             // redis-server is on PATH: idle, down and outbox use their own
	workDir  string           // binary mode: the children's config and log files
	progress io.Writer
	round    int
	// samples[side][key] holds one value per round.
	samples map[string]map[string][]float64
	// commands[side][what] is a Redis command breakdown (last round).
	commands map[string]map[string]map[string]float64
}

func runHarness(ctx context.Context, opts options, progress io.Writer) (*Report, error) {
	h, closeAll, err := newHarness(ctx, opts, progress)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	m := machineInfo(ctx, h.rdb)
	started := time.Now()
	for h.round = 1; h.round <= opts.rounds; h.round++ {
		for _, side := range sides {
			if err := h.measure(ctx, side); err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", h.round, side, err)
			}
		}
	}
	m.LoadEnd = loadAvg()
	return h.report(m, started), nil
}

func newHarness(ctx context.Context, opts options, progress io.Writer) (*harness, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	_, lookErr := exec.LookPath("redis-server")
	h := &harness{opts: opts, exe: exe, url: opts.redisURL, ownRedis: lookErr == nil, progress: progress,
		samples:  map[string]map[string][]float64{},
		commands: map[string]map[string]map[string]float64{}}
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	if opts.taskhostMode == modeBinary {
		dir := opts.logDir
		if dir == "" {
			if dir, err = os.MkdirTemp("", "taskhost-bench-"); err != nil {
				return nil, nil, err
			}
			closers = append(closers, func() { _ = os.RemoveAll(dir) })
		} else if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, err
		}
		h.workDir = dir
	}
	if h.url == "" {
		srv, err := redistest.New(h.redisOptions())
		if err != nil {
			return nil, nil, err
		}
		closers = append(closers, srv.Close)
		h.url = srv.URL()
		fmt.Fprintf(progress, "bench: redis-server on %s\n", srv.Addr())
	}
	ro, err := redis.ParseURL(h.url)
	if err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("-redis: %w", err)
	}
	h.rdb = redis.NewClient(ro)
	closers = append(closers, func() { _ = h.rdb.Close() })
	if err := h.rdb.Ping(ctx).Err(); err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("redis at %s: %w", h.url, err)
	}
	ao, err := asynq.ParseRedisURI(h.url)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	h.asynqOpt = ao
	h.client = asynq.NewClient(ao)
	h.insp = asynq.NewInspector(ao)
	closers = append(closers, func() { _ = h.client.Close(); _ = h.insp.Close() })
	if opts.cpuProfileDir != "" {
		if err := os.MkdirAll(opts.cpuProfileDir, 0o755); err != nil {
			closeAll()
			return nil, nil, err
		}
	}
	return h, closeAll, nil
}

func (h *harness) measure(ctx context.Context, side string) error {
	if h.opts.phases[phaseDrain] {
		for _, c := range h.opts.concurrency {
			if err := h.drain(ctx, side, c); err != nil {
				return fmt.Errorf("drain c=%d: %w", c, err)
			}
		}
	}
	if h.opts.phases[phaseLatency] {
		if err := h.latency(ctx, side); err != nil {
			return fmt.Errorf("latency: %w", err)
		}
	}
	if h.opts.phases[phaseSparse] {
		if err := h.sparse(ctx, side); err != nil {
			return fmt.Errorf("sparse: %w", err)
		}
	}
	if h.opts.phases[phaseIdle] {
		if err := h.idleDown(ctx, side); err != nil {
			return fmt.Errorf("idle and down: %w", err)
		}
	}
	if h.opts.phases[phaseEnqueue] {
		if err := h.enqueue(ctx, side); err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
	}
	return nil
}

func (h *harness) add(side, key string, v float64) {
	if h.samples[side] == nil {
		h.samples[side] = map[string][]float64{}
	}
	h.samples[side][key] = append(h.samples[side][key], v)
}

func (h *harness) breakdown(side, what string, m map[string]float64) {
	if h.commands[side] == nil {
		h.commands[side] = map[string]map[string]float64{}
	}
	h.commands[side][what] = m
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.progress, "bench: round %d/%d "+format+"\n", append([]any{h.round, h.opts.rounds}, args...)...)
}

// profile is the CPU profile path for a child, or "" without -cpuprofile.
func (h *harness) profile(side, what string) string {
	if h.opts.cpuProfileDir == "" {
		return ""
	}
	return filepath.Join(h.opts.cpuProfileDir, fmt.Sprintf("%s-%s-r%d.pprof", side, what, h.round))
}

// redisOptions are the options of the harness's own redis-servers: with
// -no-config, CONFIG is renamed away, as on managed services that refuse it.
func (h *harness) redisOptions() redistest.Options {
	if h.opts.noConfig {
		return redistest.Options{Args: []string{"--rename-command", "CONFIG", ""}}
	}
	return redistest.Options{}
}

// flush wipes Redis with FLUSHALL. It also renews the asynq client, which
// registers a queue in Redis only on its first enqueue to it.
func (h *harness) flush(ctx context.Context) error {
	if err := h.rdb.FlushAll(ctx).Err(); err != nil {
		return fmt.Errorf("FLUSHALL: %w", err)
	}
	err := h.client.Close()
	h.client = asynq.NewClient(h.asynqOpt)
	return err
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
