package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Report is everything a run measured; -json writes it as is.
type Report struct {
	Machine  Machine  `json:"machine"`
	Params   Params   `json:"params"`
	Rows     []Row    `json:"rows"`
	Targets  []Target `json:"targets"`
	Started  string   `json:"started"`
	Duration float64  `json:"duration_s"`
	// Commands breaks Redis commands down by name, per side, for the
	// last round: per task for the drains, per second for the idle worker.
	Commands map[string]map[string]map[string]float64 `json:"commands"`
}

// Params are the flags that shaped the figures.
type Params struct {
	N                  int     `json:"n"`
	Rounds             int     `json:"rounds"`
	Concurrency        []int   `json:"concurrency"`
	LatencyRate        int     `json:"latency_rate"`
	LatencyDurationS   float64 `json:"latency_duration_s"`
	LatencyConcurrency int     `json:"latency_concurrency"`
	IdleDurationS      float64 `json:"idle_duration_s"`
	DownDurationS      float64 `json:"down_duration_s"`
	EnqueueParallel    int     `json:"enqueue_parallel"`
	Quick              bool    `json:"quick"`
	OwnRedis           bool    `json:"own_redis"`
	Taskhost           string  `json:"taskhost,omitempty"`  // binary or library
	NoConfig           bool    `json:"no_config,omitempty"` // CONFIG renamed away
	SparseN            int     `json:"sparse_n,omitempty"`
	SparseGap          string  `json:"sparse_gap,omitempty"`
}

// Stat is one figure over the rounds.
type Stat struct {
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Values []float64 `json:"values"`
}

func newStat(v []float64) *Stat {
	if len(v) == 0 {
		return nil
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return &Stat{Median: m, Min: s[0], Max: s[len(s)-1], Values: v}
}

// Row is one line of the table: a figure for each side and their ratio.
type Row struct {
	Key    string `json:"key"`
	Label  string `json:"label"`
	Unit   string `json:"unit"`
	Better string `json:"better"` // higher or lower
	// Baseline says what the bare column measures when it is not the
	// bare worker itself (the enqueue rows).
	Baseline string   `json:"baseline,omitempty"`
	Bare     *Stat    `json:"bare"`
	Taskhost *Stat    `json:"taskhost"`
	Ratio    *float64 `json:"ratio"` // taskhost median / bare median
}

// Target is one goal of issues 7 and 18, met or missed.
type Target struct {
	Name   string `json:"name"`
	Met    bool   `json:"met"`
	Detail string `json:"detail"`
}

// rowSpec names a row and the sample key of each side.
type rowSpec struct {
	key, label, unit, better string
	bareKey, baseline        string // bareKey defaults to key
}

func rowSpecs(o options) []rowSpec {
	var specs []rowSpec
	for _, c := range o.concurrency {
		k := func(s string) string { return fmt.Sprintf("drain_c%d_%s", c, s) }
		specs = append(specs,
			rowSpec{key: k("tasks_per_s"), label: fmt.Sprintf("drain c=%d", c), unit: "tasks/s", better: "higher"},
			rowSpec{key: k("cpu_s_per_1k"), label: "  worker CPU", unit: "CPU s/1k tasks", better: "lower"},
			rowSpec{key: k("redis_cpu_s_per_1k"), label: "  Redis CPU (start to stop)", unit: "CPU s/1k tasks", better: "lower"},
			rowSpec{key: k("commands_per_task"), label: "  Redis commands", unit: "cmds/task", better: "lower"},
			rowSpec{key: k("scripts_per_task"), label: "  of which scripts", unit: "scripts/task", better: "lower"},
			rowSpec{key: k("peak_rss_mb"), label: "  peak RSS", unit: "MB", better: "lower"},
			rowSpec{key: k("log_bytes_per_task"), label: "  log written", unit: "bytes/task", better: "lower"},
			rowSpec{key: k("lifetime_s"), label: "  worker process lifetime", unit: "s", better: "lower"},
		)
	}
	at := fmt.Sprintf(" (%d/s, c=%d)", o.latencyRate, o.latencyConcurrency)
	par := fmt.Sprintf("asynq.Client, %d goroutines", o.enqueueParallel)
	return append(specs,
		rowSpec{key: "latency_p50_ms", label: "start latency p50" + at, unit: "ms", better: "lower"},
		rowSpec{key: "latency_p99_ms", label: "start latency p99", unit: "ms", better: "lower"},
		rowSpec{key: "latency_max_ms", label: "start latency max", unit: "ms", better: "lower"},
		rowSpec{key: "latency_rate_per_s", label: "  stream rate achieved", unit: "tasks/s", better: "higher"},
		rowSpec{key: "sparse_p50_ms", label: fmt.Sprintf("sparse start latency p50 (%d tasks, gaps %s-%s)", o.sparseN, o.sparseMin, o.sparseMax), unit: "ms", better: "lower"},
		rowSpec{key: "sparse_p99_ms", label: "sparse start latency p99", unit: "ms", better: "lower"},
		rowSpec{key: "sparse_max_ms", label: "sparse start latency max", unit: "ms", better: "lower"},
		rowSpec{key: "idle_commands_per_s", label: fmt.Sprintf("idle worker (c=%d)", o.latencyConcurrency), unit: "Redis cmds/s", better: "lower"},
		rowSpec{key: "idle_cpu_pct", label: "  idle CPU", unit: "% of a core", better: "lower"},
		rowSpec{key: "idle_rss_mb", label: "  idle RSS", unit: "MB", better: "lower"},
		rowSpec{key: "scrape_metrics_commands", label: "  one GET /metrics", unit: "Redis cmds", better: "lower"},
		rowSpec{key: "scrape_healthz_commands", label: "  one GET /healthz", unit: "Redis cmds", better: "lower"},
		rowSpec{key: "lifecycle_commands", label: "worker start and stop", unit: "Redis cmds", better: "lower"},
		rowSpec{key: "lifecycle_s", label: "  start to exit", unit: "s", better: "lower"},
		rowSpec{key: "down_cpu_pct", label: fmt.Sprintf("CPU while Redis is down (%s)", o.downDuration), unit: "% of a core", better: "lower"},
		rowSpec{key: "down_cpu_first_s_pct", label: "  in the first second", unit: "% of a core", better: "lower"},
		rowSpec{key: "enqueue_direct", label: "enqueue, Redis up", unit: "tasks/s", better: "higher",
			bareKey: "enqueue_asynq_parallel", baseline: par},
		rowSpec{key: "enqueue_outbox_memory", label: "enqueue into outbox (memory)", unit: "tasks/s", better: "higher",
			bareKey: "enqueue_asynq_parallel", baseline: par + ", Redis up"},
		rowSpec{key: "enqueue_outbox_file", label: fmt.Sprintf("enqueue into outbox (file, n<=%d)", fileOutboxMax), unit: "tasks/s", better: "higher",
			bareKey: "enqueue_asynq_parallel", baseline: par + ", Redis up"},
		rowSpec{key: "outbox_replay_memory", label: "outbox replay (memory)", unit: "tasks/s", better: "higher",
			bareKey: "enqueue_asynq_sequential", baseline: "asynq.Client, 1 goroutine"},
		rowSpec{key: "outbox_replay_file", label: fmt.Sprintf("outbox replay (file, n<=%d)", fileOutboxMax), unit: "tasks/s", better: "higher",
			bareKey: "enqueue_asynq_sequential", baseline: "asynq.Client, 1 goroutine"},
	)
}

func (h *harness) report(m Machine, started time.Time) *Report {
	o := h.opts
	rep := &Report{
		Machine: m,
		Params: Params{N: o.n, Rounds: o.rounds, Concurrency: o.concurrency, LatencyRate: o.latencyRate,
			LatencyDurationS: o.latencyDuration.Seconds(), LatencyConcurrency: o.latencyConcurrency,
			IdleDurationS: o.idleDuration.Seconds(), DownDurationS: o.downDuration.Seconds(),
			EnqueueParallel: o.enqueueParallel, Quick: o.quick, OwnRedis: h.ownRedis,
			Taskhost: o.taskhostMode, NoConfig: o.noConfig, SparseN: o.sparseN, SparseGap: fmt.Sprintf("%s-%s", o.sparseMin, o.sparseMax)},
		Started:  started.UTC().Format(time.RFC3339),
		Duration: math.Round(time.Since(started).Seconds()*10) / 10,
		Commands: h.commands,
	}
	for _, s := range rowSpecs(o) {
		bk := s.bareKey
		if bk == "" {
			bk = s.key
		}
		r := Row{Key: s.key, Label: s.label, Unit: s.unit, Better: s.better, Baseline: s.baseline,
			Bare: newStat(h.samples[sideBare][bk]), Taskhost: newStat(h.samples[sideTaskhost][s.key])}
		if r.Bare == nil && r.Taskhost == nil {
			continue
		}
		if r.Bare != nil && r.Taskhost != nil && r.Bare.Median != 0 {
			x := r.Taskhost.Median / r.Bare.Median
			r.Ratio = &x
		}
		rep.Rows = append(rep.Rows, r)
	}
	rep.Targets = targets(rep, o)
	return rep
}

// row returns the row with key, or nil.
func (r *Report) row(key string) *Row {
	for i := range r.Rows {
		if r.Rows[i].Key == key {
			return &r.Rows[i]
		}
	}
	return nil
}

// both returns the medians of a row measured on both sides.
func (r *Report) both(key string) (bare, th float64, ok bool) {
	row := r.row(key)
	if row == nil || row.Bare == nil || row.Taskhost == nil {
		return 0, 0, false
	}
	return row.Bare.Median, row.Taskhost.Median, true
}
