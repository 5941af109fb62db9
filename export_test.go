package taskhost

import "time"

// SetFetcherIdle sets the idle bound of every fetcher (how long an idle
// fetcher waits before it looks at its queues anyway) of a runtime not yet
// started, so that a test can tell a task found by a wake-up from one found
// by that look.
func SetFetcherIdle(r *Runtime, d time.Duration) {
	for _, f := range r.queue.fetchers {
		f.idle = d
	}
}

// WaitingFetchers is how many fetchers wait for a wake-up.
func WaitingFetchers(r *Runtime) int {
	if r.queue.hub == nil {
		return 0
	}
	return int(r.queue.hub.waiting.Load())
}

// BlockingReads is how many blocking reads are in flight.
func BlockingReads(r *Runtime) int {
	if r.queue.hub == nil || r.queue.hub.blk == nil {
		return 0
	}
	return int(r.queue.hub.blk.inFlight.Load())
}

// WakeupLives is how many times the wake-ups became live.
func WakeupLives(r *Runtime) int64 {
	if r.queue.hub == nil {
		return 0
	}
	return r.queue.hub.lives.Load()
}
