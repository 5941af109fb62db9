package taskhost

import (
	"sync/atomic"
	"time"
)

// taskCounter passes a task's start and outcome to the metrics, and counts
// the tasks in flight, which Stop reports when it has to wait for them.
type taskCounter struct {
	next     taskObserver
	inFlight atomic.Int64
}

var _ taskObserver = (*taskCounter)(nil)

func (c *taskCounter) TaskStarted() {
	c.inFlight.Add(1)
	c.next.TaskStarted()
}

func (c *taskCounter) TaskFinished() {
	c.inFlight.Add(-1)
	c.next.TaskFinished()
}

func (c *taskCounter) ObserveTask(taskType, queue, outcome string, d time.Duration) {
	c.next.ObserveTask(taskType, queue, outcome, d)
}
