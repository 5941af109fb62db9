package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// ScheduleStat is what the schedule metrics read of one periodic task.
type ScheduleStat struct {
	Name string
	// Next and LastRun are Unix seconds; 0 when unknown.
	Next, LastRun float64
	// Ticks counts ticks by result.
	Ticks map[string]uint64
}

// RegisterSchedules exports each periodic task's next and last run and its
// ticks by result, read from stats on each scrape (memory only).
func (m *Metrics) RegisterSchedules(stats func() []ScheduleStat) error {
	return m.register("schedules", &scheduleCollector{stats: stats})
}

var (
	scheduleNextDesc = prometheus.NewDesc(Namespace+"_schedule_next_run_timestamp_seconds",
		"When the periodic task's next tick is due, in Unix seconds.", []string{"schedule"}, nil)
	scheduleLastDesc = prometheus.NewDesc(Namespace+"_schedule_last_run_timestamp_seconds",
		"The periodic task's last tick known to be in Redis (enqueued by this worker or another), in Unix seconds.",
		[]string{"schedule"}, nil)
	scheduleTicksDesc = prometheus.NewDesc(Namespace+"_schedule_ticks_total",
		"Ticks this worker handled, by result: enqueued, duplicate (another worker had enqueued it), unique_locked, missed.",
		[]string{"schedule", "result"}, nil)
)

type scheduleCollector struct{ stats func() []ScheduleStat }

func (c *scheduleCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- scheduleNextDesc
	ch <- scheduleLastDesc
	ch <- scheduleTicksDesc
}

func (c *scheduleCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.stats() {
		if s.Next > 0 {
			ch <- prometheus.MustNewConstMetric(scheduleNextDesc, prometheus.GaugeValue, s.Next, s.Name)
		}
		if s.LastRun > 0 {
			ch <- prometheus.MustNewConstMetric(scheduleLastDesc, prometheus.GaugeValue, s.LastRun, s.Name)
		}
		for result, n := range s.Ticks {
			ch <- prometheus.MustNewConstMetric(scheduleTicksDesc, prometheus.CounterValue, float64(n), s.Name, result)
		}
	}
}
