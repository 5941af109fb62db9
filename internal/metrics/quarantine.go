package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// RegisterQuarantine exports the queue guard's counts: the poison tasks in
// each queue's quarantine (taskhost_quarantined_tasks{queue}), as last read
// from Redis, and the tasks this process set aside or archived unread
// (taskhost_tasks_set_aside_total{queue,reason}, reason missing,
// undecodable, incomplete or oversized).
func (m *Metrics) RegisterQuarantine(quarantined func() map[string]int64, setAside func() map[[2]string]uint64) error {
	return m.register("quarantine", &quarantineCollector{quarantined: quarantined, setAside: setAside})
}

var (
	quarantinedDesc = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "quarantined_tasks"),
		"Poison tasks in the queue's quarantine (undecodable, incomplete or missing task hashes), as last read; see worker doctor.",
		[]string{"queue"}, nil)
	setAsideDesc = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "tasks_set_aside_total"),
		"Tasks this process moved out of a queue's way: quarantined (missing, undecodable, incomplete) or archived unread (oversized).",
		[]string{"queue", "reason"}, nil)
)

type quarantineCollector struct {
	quarantined func() map[string]int64
	setAside    func() map[[2]string]uint64
}

func (c *quarantineCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- quarantinedDesc
	ch <- setAsideDesc
}

func (c *quarantineCollector) Collect(ch chan<- prometheus.Metric) {
	for q, n := range c.quarantined() {
		ch <- prometheus.MustNewConstMetric(quarantinedDesc, prometheus.GaugeValue, float64(n), q)
	}
	for k, n := range c.setAside() {
		ch <- prometheus.MustNewConstMetric(setAsideDesc, prometheus.CounterValue, float64(n), k[0], k[1])
	}
}
