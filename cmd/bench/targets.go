package main

import "fmt"

// Targets of issues 7 and 18, judged on the medians of one run.
const (
	maxLatencyP99ms    = 2.0  // at -latency-rate, from a plain asynq.Client
	maxSparseP99ms     = 5.0  // tasks one to five seconds apart
	maxExtraIdleCmds   = 10.0 // Redis commands per second over bare asynq's
	maxIdleRSSMB       = 40.0
	maxDownCPUPct      = 5.0
	lowConcurrencyMax  = 10  // up to this concurrency, the drain goal is lowConcurrencyGoal
	lowConcurrencyGoal = 1.6 // ×bare (about 1.2× BullMQ)
	drainGoal          = 2.5 // ×bare above lowConcurrencyMax (about 1.5× BullMQ)
)

func targets(r *Report, o options) []Target {
	var out []Target
	for _, c := range o.concurrency {
		key := fmt.Sprintf("drain_c%d_tasks_per_s", c)
		if bare, th, ok := r.both(key); ok {
			row := r.row(key)
			goal := drainGoal
			if c <= lowConcurrencyMax {
				goal = lowConcurrencyGoal
			}
			cpu := ""
			if b, t, ok := r.both(fmt.Sprintf("drain_c%d_cpu_s_per_1k", c)); ok {
				cpu = fmt.Sprintf("; worker CPU per task %.3fx bare's", t/b)
			}
			out = append(out, Target{
				Name: fmt.Sprintf("drain throughput >= %.1fx bare at c=%d", goal, c),
				Met:  th >= goal*bare,
				Detail: fmt.Sprintf("%.0f vs %.0f tasks/s: %.3fx (best rounds %.0f vs %.0f: %.3fx)%s",
					th, bare, th/bare, row.Taskhost.Max, row.Bare.Max, row.Taskhost.Max/row.Bare.Max, cpu),
			})
		}
		if t, ok := commandsTarget(r, o, c); ok {
			out = append(out, t)
		}
	}
	ceilings := []struct {
		key, name string
		max       float64
		format    string // of one figure
	}{
		{"latency_p99_ms", fmt.Sprintf("start latency p99 <= %.0f ms at %d/s", maxLatencyP99ms, o.latencyRate), maxLatencyP99ms, "%.2f ms"},
		{"sparse_p99_ms", fmt.Sprintf("sparse start latency p99 <= %.0f ms", maxSparseP99ms), maxSparseP99ms, "%.2f ms"},
		{"idle_rss_mb", fmt.Sprintf("idle worker RSS <= %.0f MB", maxIdleRSSMB), maxIdleRSSMB, "%.1f MB"},
		{"down_cpu_pct", fmt.Sprintf("CPU while Redis is down <= %.0f%% of one core", maxDownCPUPct), maxDownCPUPct, "%.2f%%"},
	}
	for i, c := range ceilings {
		if i == 2 { // after the latencies, before the memory: the idle commands
			if bare, th, ok := r.both("idle_commands_per_s"); ok {
				out = append(out, Target{
					Name:   fmt.Sprintf("idle worker <= bare + %.0f Redis commands/s", maxExtraIdleCmds),
					Met:    th <= bare+maxExtraIdleCmds,
					Detail: fmt.Sprintf("%.2f vs %.2f commands/s (%+.2f)", th, bare, th-bare),
				})
			}
		}
		if row := r.row(c.key); row != nil && row.Taskhost != nil {
			out = append(out, Target{
				Name: c.name,
				Met:  row.Taskhost.Median <= c.max,
				Detail: fmt.Sprintf(c.format+" (max round "+c.format+"); bare %s",
					row.Taskhost.Median, row.Taskhost.Max, medianOr(row.Bare, c.format)),
			})
		}
	}
	return out
}

func medianOr(s *Stat, format string) string {
	if s == nil {
		return "not measured"
	}
	return fmt.Sprintf(format, s.Median)
}

// commandsTarget compares Redis commands per task in the drain at
// concurrency c, round by round. What taskhost may add is not per task: its
// loops' extra commands per second over the drain worker's lifetime (plus
// one second, as loop ticks are whole), and its extra start and stop
// commands. The target is met when the median round stays within that.
func commandsTarget(r *Report, o options, c int) (Target, bool) {
	cpt := r.row(fmt.Sprintf("drain_c%d_commands_per_task", c))
	life := r.row(fmt.Sprintf("drain_c%d_lifetime_s", c))
	rb, rt, ok1 := r.both("idle_commands_per_s")
	lb, lt, ok2 := r.both("lifecycle_commands")
	tb, tt, ok3 := r.both("lifecycle_s")
	if !(ok1 && ok2 && ok3) || cpt == nil || life == nil || cpt.Bare == nil || cpt.Taskhost == nil || life.Taskhost == nil {
		return Target{}, false
	}
	rounds := min(len(cpt.Bare.Values), len(cpt.Taskhost.Values), len(life.Taskhost.Values))
	// Start and stop alone: the lifecycle run less its loops.
	startStop := max(0, (lt-rt*tt)-(lb-rb*tb))
	n := float64(o.n)
	extra, allowed, margin := make([]float64, rounds), make([]float64, rounds), make([]float64, rounds)
	for i := range rounds {
		extra[i] = (cpt.Taskhost.Values[i] - cpt.Bare.Values[i]) * n
		allowed[i] = max(0, rt-rb)*(life.Taskhost.Values[i]+1) + startStop
		margin[i] = allowed[i] - extra[i]
	}
	m := newStat(margin).Median
	return Target{
		Name: fmt.Sprintf("Redis commands per task <= bare + loops and start-up at c=%d", c),
		Met:  m >= -1e-6,
		Detail: fmt.Sprintf("%.5f vs %.5f cmds/task; extra commands per run %s, allowed %s (loops %.2f vs %.2f cmds/s over the worker's lifetime + 1 s, start and stop %+.0f)",
			cpt.Taskhost.Median, cpt.Bare.Median, ints(extra), ints(allowed), rt, rb, startStop),
	}, true
}

func ints(v []float64) string {
	s := ""
	for i, x := range v {
		if i > 0 {
			s += "/"
		}
		s += fmt.Sprintf("%+.0f", x)
	}
	return s
}
