package metrics

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultQueueTimeout bounds one read of the queue stats.
const DefaultQueueTimeout = 500 * time.Millisecond

// QueueInspector is the part of *asynq.Inspector the queue gauges use.
type QueueInspector interface {
	Queues() ([]string, error)
	GetQueueInfo(queue string) (*asynq.QueueInfo, error)
}

// RegisterQueues exports per-queue gauges read from in on each scrape. A
// read that takes longer than timeout (zero means DefaultQueueTimeout) is
// abandoned for that scrape: taskhost_queue_stats_up is 0 and no queue series
// are sent, rather than stale ones. The Inspector takes no context, so the
// abandoned read finishes in the background; scrapes that come while it
// runs wait on it instead of starting another.
func (m *Metrics) RegisterQueues(in QueueInspector, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultQueueTimeout
	}
	return m.register("queues", newQueueCollector(in, timeout))
}

var (
	queueSize = prometheus.NewDesc(Namespace+"_queue_size",
		"Tasks in the queue: pending, active, scheduled, retry, aggregating and archived.", []string{"queue"}, nil)
	queueTasks = prometheus.NewDesc(Namespace+"_queue_tasks",
		"Tasks in the queue by state.", []string{"queue", "state"}, nil)
	queueLatency = prometheus.NewDesc(Namespace+"_queue_latency_seconds",
		"How long the oldest pending task in the queue has waited.", []string{"queue"}, nil)
	queueMemory = prometheus.NewDesc(Namespace+"_queue_memory_bytes",
		"Approximate memory the queue takes in Redis, by sampling.", []string{"queue"}, nil)
	queueProcessed = prometheus.NewDesc(Namespace+"_queue_processed_total",
		"Tasks processed from the queue, succeeded or failed, as asynq counts them.", []string{"queue"}, nil)
	queueFailed = prometheus.NewDesc(Namespace+"_queue_failed_total",
		"Tasks from the queue that failed, as asynq counts them.", []string{"queue"}, nil)
	queuePaused = prometheus.NewDesc(Namespace+"_queue_paused",
		"1 while the queue is paused, else 0.", []string{"queue"}, nil)
	queueUp = prometheus.NewDesc(Namespace+"_queue_stats_up",
		"1 when the last read of the queue stats succeeded within its timeout, else 0.", nil, nil)
	queueReadDuration = prometheus.NewDesc(Namespace+"_queue_stats_duration_seconds",
		"How long the last read of the queue stats took, or was waited for.", nil, nil)
)

type queueCollector struct {
	in      QueueInspector
	timeout time.Duration

	mu  sync.Mutex
	cur *queueRead
}

type queueRead struct {
	done  chan struct{}
	infos []*asynq.QueueInfo
	err   error
}

func newQueueCollector(in QueueInspector, timeout time.Duration) *queueCollector {
	return &queueCollector{in: in, timeout: timeout}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{queueSize, queueTasks, queueLatency, queueMemory,
		queueProcessed, queueFailed, queuePaused, queueUp, queueReadDuration} {
		ch <- d
	}
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	begin := time.Now()
	infos, err := c.read()
	ch <- prometheus.MustNewConstMetric(queueReadDuration, prometheus.GaugeValue, time.Since(begin).Seconds())
	if err != nil {
		ch <- prometheus.MustNewConstMetric(queueUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(queueUp, prometheus.GaugeValue, 1)
	for _, q := range infos {
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{q.Queue}, labels...)...)
		}
		gauge(queueSize, float64(q.Size))
		for state, n := range map[string]int{"pending": q.Pending, "active": q.Active, "scheduled": q.Scheduled,
			"retry": q.Retry, "archived": q.Archived, "completed": q.Completed, "aggregating": q.Aggregating} {
			gauge(queueTasks, float64(n), state)
		}
		gauge(queueLatency, q.Latency.Seconds())
		gauge(queueMemory, float64(q.MemoryUsage))
		gauge(queuePaused, b2f(q.Paused))
		ch <- prometheus.MustNewConstMetric(queueProcessed, prometheus.CounterValue, float64(q.ProcessedTotal), q.Queue)
		ch <- prometheus.MustNewConstMetric(queueFailed, prometheus.CounterValue, float64(q.FailedTotal), q.Queue)
	}
}

// errQueueTimeout is a read that did not finish within the timeout.
var errQueueTimeout = errors.New("metrics: queue stats read timed out")

// read joins the read in progress or starts one, and waits for it up to c.timeout.
func (c *queueCollector) read() ([]*asynq.QueueInfo, error) {
	c.mu.Lock()
	r := c.cur
	if r == nil {
		r = &queueRead{done: make(chan struct{})}
		c.cur = r
		go c.run(r)
	}
	c.mu.Unlock()
	t := time.NewTimer(c.timeout)
	defer t.Stop()
	select {
	case <-r.done:
		return r.infos, r.err
	case <-t.C:
		return nil, errQueueTimeout
	}
}

func (c *queueCollector) run(r *queueRead) {
	defer func() {
		if p := recover(); p != nil {
			r.err = fmt.Errorf("metrics: queue stats panicked: %v", p)
		}
		c.mu.Lock()
		c.cur = nil
		c.mu.Unlock()
		close(r.done)
	}()
	names, err := c.in.Queues()
	if err != nil {
		r.err = fmt.Errorf("metrics: list queues: %w", err)
		return
	}
	for _, name := range names {
		qi, err := c.in.GetQueueInfo(name)
		if err != nil {
			r.err = fmt.Errorf("metrics: queue %q: %w", name, err)
			return
		}
		r.infos = append(r.infos, qi)
	}
}
