//go:build chaos

package chaostest

import "time"

// prof is the full run of `go test -tags chaos`: 20,000 tasks and Redis
// outages of 1 s, 5 s and 35 s; the last is longer than asynq's 30 s lease.
var prof = profile{
	name:  "full",
	tasks: 20000,
	rate:  200,
	work:  50 * time.Millisecond,

	workerKill1: 5 * time.Second,
	redis1:      12 * time.Second,
	redis2:      20 * time.Second,
	workerKill2: 35 * time.Second,
	workerTerm:  45 * time.Second,
	redis3:      55 * time.Second,
	outages:     [3]time.Duration{time.Second, 5 * time.Second, 35 * time.Second},
	workerDown:  2 * time.Second,

	fleetRun: 60 * time.Second,

	drainWithin: 180 * time.Second,
}
