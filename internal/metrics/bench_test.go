package metrics_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskhost/taskhost/internal/metrics"
)

// BenchmarkObserveTask is the per-task cost the runtime pays; the baseline
// is the same counter and histogram from client_golang used bare.
func BenchmarkObserveTask(b *testing.B) {
	b.Run("baseline=client_golang", func(b *testing.B) {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "c"}, []string{"type", "queue", "outcome"})
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h_seconds", Help: "h", Buckets: metrics.DurationBuckets}, []string{"type"})
		b.ReportAllocs()
		for b.Loop() {
			c.WithLabelValues("email:send", "default", metrics.OutcomeSuccess).Inc()
			h.WithLabelValues("email:send").Observe(0.02)
		}
	})
	b.Run("taskhost", func(b *testing.B) {
		m := metrics.New()
		b.ReportAllocs()
		for b.Loop() {
			m.ObserveTask("email:send", "default", metrics.OutcomeSuccess, 20*time.Millisecond)
		}
	})
}
