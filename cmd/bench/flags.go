package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// options are the harness's flags.
type options struct {
	n                  int
	rounds             int
	concurrency        []int
	latencyRate        int
	latencyDuration    time.Duration
	latencyConcurrency int
	idleDuration       time.Duration
	downDuration       time.Duration
	enqueueParallel    int
	redisURL           string
	jsonPath           string
	quick              bool
	cpuProfileDir      string
	phases             map[string]bool
	printPath          string
	taskhostMode       string // modeBinary or modeLibrary
	noConfig           bool   // the harness's redis-servers refuse CONFIG
	logDir             string // binary mode: keep the children's configs and logs here
	sparseN            int
	sparseMin          time.Duration
	sparseMax          time.Duration
}

// Phases a run can be limited to with -phases.
const (
	phaseDrain   = "drain"
	phaseLatency = "latency"
	phaseIdle    = "idle" // idle worker, then Redis down
	phaseEnqueue = "enqueue"
	phaseSparse  = "sparse" // start latency of tasks one to five seconds apart
)

var allPhases = []string{phaseDrain, phaseLatency, phaseSparse, phaseIdle, phaseEnqueue}

// quickDefaults are the -quick values of the flags not set explicitly: a
// CI-sized run of well under a minute.
var quickDefaults = map[string]string{
	"n":                "2000",
	"rounds":           "1",
	"latency-duration": "3s",
	"idle-duration":    "2s",
	"down-duration":    "3s",
	"sparse-n":         "4",
	"sparse-gap":       "200ms-1s",
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	var conc, phases, gap string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.n, "n", 50000, "tasks per drain and per enqueue measurement")
	fs.IntVar(&o.rounds, "rounds", 3, "interleaved rounds (bare, taskhost, bare, ...); figures are the median with min and max")
	fs.StringVar(&conc, "concurrency", "10,50,200", "comma-separated worker concurrencies for the drain")
	fs.IntVar(&o.latencyRate, "latency-rate", 1000, "tasks per second of the steady stream for start latency")
	fs.DurationVar(&o.latencyDuration, "latency-duration", 10*time.Second, "length of the steady stream")
	fs.IntVar(&o.latencyConcurrency, "latency-concurrency", 10, "worker concurrency for the latency and idle measurements")
	fs.DurationVar(&o.idleDuration, "idle-duration", 10*time.Second, "window over which an idle worker's Redis commands, CPU and RSS are measured")
	fs.DurationVar(&o.downDuration, "down-duration", 10*time.Second, "window over which CPU is measured while Redis is down")
	fs.IntVar(&o.enqueueParallel, "enqueue-parallel", 16, "goroutines enqueueing in the pre-fill and the enqueue measurements")
	fs.StringVar(&o.redisURL, "redis", "", "Redis `URL` to use instead of starting a redis-server (it is FLUSHALLed)")
	fs.StringVar(&o.jsonPath, "json", "", "also write the figures as JSON to `file` (- for stdout)")
	fs.BoolVar(&o.quick, "quick", false, "CI-sized run (< 60 s): -n 2000 -rounds 1 -latency-duration 3s -idle-duration 2s -down-duration 3s unless set")
	fs.StringVar(&o.cpuProfileDir, "cpuprofile", "", "write a CPU profile of each child worker into `dir`")
	fs.StringVar(&o.printPath, "print", "", "print the table of an earlier -json `file`, with the targets judged again, and exit")
	fs.StringVar(&o.taskhostMode, "taskhost", modeBinary, "how the taskhost side runs: binary (the worker command with a config file, its log in a file, as users run it) or library (runtime.New in the child, log to io.Discard)")
	fs.BoolVar(&o.noConfig, "no-config", false, "start the harness's redis-servers with CONFIG renamed away, as managed services that refuse it")
	fs.StringVar(&o.logDir, "log-dir", "", "binary mode: keep the children's config files and logs in `dir` (default: a temporary directory, removed)")
	fs.IntVar(&o.sparseN, "sparse-n", 20, "tasks of the sparse phase, each enqueued after a random gap")
	fs.StringVar(&gap, "sparse-gap", "1s-5s", "range of the sparse phase's gaps, `min-max`")
	fs.StringVar(&phases, "phases", strings.Join(allPhases, ","), "comma-separated phases to run: drain, latency, idle (idle then Redis down), enqueue")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range quickDefaults {
			if !set[name] {
				if err := fs.Set(name, v); err != nil {
					return o, err
				}
			}
		}
	}
	var err error
	if o.concurrency, err = parseInts(conc); err != nil {
		return o, fmt.Errorf("-concurrency: %w", err)
	}
	if o.phases, err = parsePhases(phases); err != nil {
		return o, fmt.Errorf("-phases: %w", err)
	}
	if o.sparseMin, o.sparseMax, err = parseRange(gap); err != nil {
		return o, fmt.Errorf("-sparse-gap: %w", err)
	}
	return o, o.validate()
}

func (o options) validate() error {
	var errs []error
	if o.n < 1 {
		errs = append(errs, errors.New("-n must be >= 1"))
	}
	if o.rounds < 1 {
		errs = append(errs, errors.New("-rounds must be >= 1"))
	}
	if o.latencyRate < 1 || o.latencyDuration <= 0 || o.latencyConcurrency < 1 {
		errs = append(errs, errors.New("-latency-rate, -latency-duration and -latency-concurrency must be > 0"))
	}
	if o.idleDuration <= 0 || o.downDuration <= 0 {
		errs = append(errs, errors.New("-idle-duration and -down-duration must be > 0"))
	}
	if o.taskhostMode != modeBinary && o.taskhostMode != modeLibrary {
		errs = append(errs, fmt.Errorf("-taskhost %q: want %s or %s", o.taskhostMode, modeBinary, modeLibrary))
	}
	if o.sparseN < 1 {
		errs = append(errs, errors.New("-sparse-n must be >= 1"))
	}
	if o.enqueueParallel < 1 {
		errs = append(errs, errors.New("-enqueue-parallel must be >= 1"))
	}
	return errors.Join(errs...)
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseRange reads "min-max" durations, 0 < min <= max.
func parseRange(s string) (lo, hi time.Duration, err error) {
	a, b, ok := strings.Cut(s, "-")
	if ok {
		lo, err = time.ParseDuration(strings.TrimSpace(a))
		if err == nil {
			hi, err = time.ParseDuration(strings.TrimSpace(b))
		}
	}
	if !ok || err != nil || lo <= 0 || hi < lo {
		return 0, 0, fmt.Errorf("%q: want min-max durations, 0 < min <= max, e.g. 1s-5s", s)
	}
	return lo, hi, nil
}

func parsePhases(s string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		ok := false
		for _, p := range allPhases {
			ok = ok || p == f
		}
		if !ok {
			return nil, fmt.Errorf("unknown phase %q; phases are %s", f, strings.Join(allPhases, ", "))
		}
		out[f] = true
	}
	return out, nil
}
