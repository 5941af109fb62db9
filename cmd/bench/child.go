package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"
)

// childFlag, as the first argument, runs the binary as a child worker.
const childFlag = "-child"

// The two sides measured.
const (
	sideBare     = "bare"
	sideTaskhost = "taskhost"
)

var sides = []string{sideBare, sideTaskhost}

// childSpec is what the harness asks of a child worker.
type childSpec struct {
	side        string
	redisURL    string
	concurrency int
	n           int  // report after n tasks; 0 never reports
	record      bool // record each task's start latency
	cpuProfile  string
}

func (s childSpec) args() []string {
	return []string{childFlag, "-side", s.side, "-redis", s.redisURL,
		"-concurrency", strconv.Itoa(s.concurrency), "-n", strconv.Itoa(s.n),
		"-record=" + strconv.FormatBool(s.record), "-cpuprofile", s.cpuProfile}
}

func parseChild(args []string, stderr io.Writer) (childSpec, error) {
	var s childSpec
	fs := flag.NewFlagSet("bench -child", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&s.side, "side", "", "bare or taskhost")
	fs.StringVar(&s.redisURL, "redis", "", "Redis URL")
	fs.IntVar(&s.concurrency, "concurrency", 10, "worker concurrency")
	fs.IntVar(&s.n, "n", 0, "report after this many tasks")
	fs.BoolVar(&s.record, "record", false, "record start latencies")
	fs.StringVar(&s.cpuProfile, "cpuprofile", "", "CPU profile file")
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if s.side != sideBare && s.side != sideTaskhost {
		return s, fmt.Errorf("-side %q: want bare or taskhost", s.side)
	}
	return s, nil
}

// event is one JSON line a child writes on stdout.
type event struct {
	Event string `json:"event"` // ready, done or error
	PID   int    `json:"pid,omitempty"`
	// Health is taskhost's health listener (ready).
	Health string `json:"health,omitempty"`
	Error  string `json:"error,omitempty"`
	// done: the first and the n-th task's start, and the process's CPU
	// time at each (from /proc/self/stat).
	Tasks    int64   `json:"tasks,omitempty"`
	FirstNs  int64   `json:"first_ns,omitempty"`
	LastNs   int64   `json:"last_ns,omitempty"`
	CPUFirst float64 `json:"cpu_first_s,omitempty"`
	CPULast  float64 `json:"cpu_last_s,omitempty"`
	// done with -record: start latency percentiles in milliseconds.
	P50ms float64 `json:"p50_ms,omitempty"`
	P99ms float64 `json:"p99_ms,omitempty"`
	MaxMs float64 `json:"max_ms,omitempty"`
}

// childMain runs one worker until stdin closes. It writes "ready" once the
// worker is connected and "done" after n tasks have run.
func childMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	enc := json.NewEncoder(stdout)
	fail := func(err error) int {
		_ = enc.Encode(event{Event: "error", Error: err.Error()})
		fmt.Fprintln(stderr, "bench child:", err)
		return 1
	}
	spec, err := parseChild(args, stderr)
	if err != nil {
		return fail(err)
	}
	p := newProbe(spec.n, spec.record)
	w, err := startWorker(ctx, spec, p)
	if err != nil {
		return fail(err)
	}
	stopProfile, err := startProfile(spec.cpuProfile)
	if err != nil {
		return fail(err)
	}
	_ = enc.Encode(event{Event: "ready", PID: os.Getpid(), Health: w.health})

	eof := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, stdin); close(eof) }()
	select {
	case <-p.done:
		stopProfile()
		_ = enc.Encode(p.report())
		<-eof
	case <-eof:
	case <-ctx.Done():
	}
	stopProfile()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.stop(sctx); err != nil {
		fmt.Fprintln(stderr, "bench child: stop:", err)
		return 1
	}
	return 0
}

// startProfile starts a CPU profile into path when it is set; the returned
// func stops it and may be called more than once.
func startProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, errors.Join(fmt.Errorf("cpuprofile: %w", err), os.Remove(path))
	}
	return sync.OnceFunc(func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}), nil
}
