//go:build !chaos

package chaostest

import "time"

// prof is the CI-sized run of `go test ./...`: 2,000 tasks, and Redis
// outages of 1 s, 2 s and 5 s instead of the full run's 1 s, 5 s and 35 s,
// so the run fits CI's budget. The 35 s outage, longer than the lease, is
// the full run's (go test -tags chaos).
var prof = profile{
	name:  "ci",
	tasks: 2000,
	rate:  150,
	work:  50 * time.Millisecond,

	workerKill1: 1500 * time.Millisecond,
	redis1:      3 * time.Second,
	redis2:      7 * time.Second,
	workerKill2: 10 * time.Second,
	workerTerm:  11 * time.Second,
	redis3:      12 * time.Second,
	outages:     [3]time.Duration{time.Second, 2 * time.Second, 5 * time.Second},
	workerDown:  time.Second,

	fleetRun: 20 * time.Second,

	drainWithin: 150 * time.Second,
}
