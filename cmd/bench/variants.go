package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Variants (-variants) compare settings of the taskhost worker command in
// one run: the drain only, bare asynq and each variant interleaved round by
// round, each variant a set of environment overrides of the worker's config
// (WORKER_FETCHERS=6, LOG_LEVEL=warn) or of Go's runtime (GOGC=200):
//
//	go run ./cmd/bench -variants 'default=;warn=LOG_LEVEL=warn;f6=WORKER_FETCHERS=6 LOG_LEVEL=warn'
//
// BENCH_WORKER_EXE=/path/to/bench runs that variant's worker command from
// another cmd/bench binary, for example one built from an earlier commit.
// It prints, per variant and concurrency, the median tasks/s and worker CPU
// per 1,000 tasks with their ratios to bare asynq in the same rounds.

// variant is one named set of environment overrides.
type variant struct {
	name string
	env  []string
}

// parseVariants reads "name=K=V K=V;name2=..." (an empty list after the
// first "=" is the default config).
func parseVariants(s string) ([]variant, error) {
	var out []variant
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, envs, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" || name == sideBare || seen[name] {
			return nil, fmt.Errorf("%q: want name=ENV=value ENV=value, with a unique name other than %q", part, sideBare)
		}
		seen[name] = true
		v := variant{name: name}
		for _, kv := range strings.Fields(envs) {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				return nil, fmt.Errorf("variant %s: %q is not ENV=value", name, kv)
			}
			v.env = append(v.env, kv)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no variant in %q", s)
	}
	return out, nil
}

// variantSide is the sample key of a variant.
func variantSide(name string) string { return "variant:" + name }

// runVariants runs the drains of bare asynq and each variant, interleaved.
func runVariants(ctx context.Context, h *harness, vs []variant, out io.Writer) error {
	if h.opts.taskhostMode != modeBinary {
		return fmt.Errorf("-variants needs -taskhost %s", modeBinary)
	}
	h.variantEnv = map[string][]string{}
	for _, v := range vs {
		h.variantEnv[variantSide(v.name)] = v.env
	}
	started := time.Now()
	for h.round = 1; h.round <= h.opts.rounds; h.round++ {
		for _, c := range h.opts.concurrency {
			order := append([]string{sideBare}, variantSides(vs)...)
			for _, side := range order {
				if err := h.drain(ctx, side, c); err != nil {
					return fmt.Errorf("round %d, %s, c=%d: %w", h.round, side, c, err)
				}
			}
		}
	}
	fmt.Fprintf(out, "variants of the taskhost worker command against bare asynq: %d rounds, n=%d, medians [min..max], %s\n",
		h.opts.rounds, h.opts.n, time.Since(started).Round(time.Second))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "variant\tenv\tc\ttasks/s\t×bare\tCPU s/1k tasks\t×bare\tlog bytes/task\t")
	for _, c := range h.opts.concurrency {
		tk := fmt.Sprintf("drain_c%d_tasks_per_s", c)
		ck := fmt.Sprintf("drain_c%d_cpu_s_per_1k", c)
		lk := fmt.Sprintf("drain_c%d_log_bytes_per_task", c)
		bt, bc := newStat(h.samples[sideBare][tk]), newStat(h.samples[sideBare][ck])
		fmt.Fprintf(tw, "bare asynq\t\t%d\t%s\t\t%s\t\t\t\n", c, fmtStat(bt), fmtStat(bc))
		for _, v := range vs {
			s := h.samples[variantSide(v.name)]
			t, cp, lb := newStat(s[tk]), newStat(s[ck]), newStat(s[lk])
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.2f\t%s\t%.2f\t%s\t\n", v.name, strings.Join(v.env, " "), c,
				fmtStat(t), t.Median/bt.Median, fmtStat(cp), cp.Median/bc.Median, fmtStat(lb))
		}
	}
	return tw.Flush()
}

func variantSides(vs []variant) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = variantSide(v.name)
	}
	return out
}
