package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/redis/go-redis/v9"
)

// Machine describes where the figures were taken.
type Machine struct {
	NProc        int    `json:"nproc"`
	GOMAXPROCS   int    `json:"gomaxprocs"`
	CPUModel     string `json:"cpu_model"`
	Kernel       string `json:"kernel"`
	LoadStart    string `json:"loadavg_start"`
	LoadEnd      string `json:"loadavg_end"`
	GoVersion    string `json:"go_version"`
	RedisVersion string `json:"redis_version"`
	Asynq        string `json:"asynq"`
}

func machineInfo(ctx context.Context, rdb *redis.Client) Machine {
	m := Machine{
		NProc:        goruntime.NumCPU(),
		GOMAXPROCS:   goruntime.GOMAXPROCS(0),
		CPUModel:     "unknown",
		Kernel:       strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")),
		LoadStart:    loadAvg(),
		GoVersion:    goruntime.Version(),
		RedisVersion: redisVersion(ctx, rdb),
		Asynq:        "unknown",
	}
	for _, line := range strings.Split(readFile("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			m.CPUModel = strings.TrimSpace(v)
			break
		}
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/hibiken/asynq" {
				m.Asynq = d.Version
			}
		}
	}
	return m
}

// loadAvg is the 1, 5 and 15 minute load average.
func loadAvg() string {
	f := strings.Fields(readFile("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// printReport writes the table, the targets and the machine.
func printReport(w io.Writer, r *Report) {
	m := r.Machine
	fmt.Fprintf(w, "taskhost vs bare asynq %s: %d rounds, n=%d, medians [min..max]\n", m.Asynq, r.Params.Rounds, r.Params.N)
	fmt.Fprintf(w, "machine: %d CPUs (%s), kernel %s, load %s -> %s, %s, redis %s; %.0f s\n",
		m.NProc, m.CPUModel, m.Kernel, m.LoadStart, m.LoadEnd, m.GoVersion, m.RedisVersion, r.Duration)
	side := "the worker command with a config file, its info log written to a file"
	if r.Params.Taskhost == modeLibrary {
		side = "runtime.New in the child, its log to io.Discard"
	}
	redisCfg := "CONFIG allowed"
	if r.Params.NoConfig {
		redisCfg = "CONFIG renamed away (refused)"
	}
	fmt.Fprintf(w, "taskhost side: %s; Redis: %s\n\n", side, redisCfg)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tunit\tbare asynq\ttaskhost\ttaskhost/bare\t")
	for _, row := range r.Rows {
		ratio := "-"
		if row.Ratio != nil {
			ratio = fmt.Sprintf("%.3f", *row.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", row.Label, row.Unit, fmtStat(row.Bare), fmtStat(row.Taskhost), ratio)
	}
	_ = tw.Flush()
	for _, row := range r.Rows {
		if row.Baseline != "" {
			fmt.Fprintf(w, "  (%s: the bare column is %s)\n", row.Label, row.Baseline)
		}
	}
	fmt.Fprintln(w, "\ntargets:")
	for _, t := range r.Targets {
		state := "MET   "
		if !t.Met {
			state = "MISSED"
		}
		fmt.Fprintf(w, "  %s %s: %s\n", state, t.Name, t.Detail)
	}
}

func fmtStat(s *Stat) string {
	if s == nil {
		return "-"
	}
	if len(s.Values) == 1 {
		return fmtNum(s.Median)
	}
	return fmt.Sprintf("%s [%s..%s]", fmtNum(s.Median), fmtNum(s.Min), fmtNum(s.Max))
}

// fmtNum keeps about three significant digits.
func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}
