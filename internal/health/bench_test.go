package health_test

import (
	"context"
	"testing"
)

// BenchmarkReport is the cost of one /healthz report with in-memory sources
// and two checks; the baseline calls the same funcs one after another with
// no deadline, no concurrency and no JSON.
func BenchmarkReport(b *testing.B) {
	bundle := setup(b)
	ctx := context.Background()
	b.Run("baseline=direct-calls", func(b *testing.B) {
		src := bundle.opts.Source
		checks := bundle.reg.Checks()
		b.ReportAllocs()
		for b.Loop() {
			_, _ = src.Connection(ctx)
			_, _ = src.Ping(ctx)
			_, _ = src.Redis(ctx)
			_, _ = src.Queues(ctx)
			_, _ = src.Fallbacks(ctx)
			_, _ = bundle.opts.Ready()
			for _, c := range checks {
				_ = c.Run(ctx)
			}
		}
	})
	b.Run("healthcheck", func(b *testing.B) {
		h := bundle.handler()
		b.ReportAllocs()
		for b.Loop() {
			_ = h.Report(ctx)
		}
	})
}
