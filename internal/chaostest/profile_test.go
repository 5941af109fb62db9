package chaostest

import "time"

// profile sizes a chaos run. The offsets of the faults count from the
// producer's start; each fault runs to its end before the next begins.
// Outages are at least 3 s apart, so that /readyz can be seen to recover
// between them (the monitor's reconnect backoff is capped at 2 s).
type profile struct {
	name  string
	tasks int
	rate  float64       // producer tasks per second
	work  time.Duration // each execution's pretend work, so some are in flight at a kill

	workerKill1, redis1, redis2, workerKill2, workerTerm, redis3 time.Duration
	outages                                                      [3]time.Duration
	workerDown                                                   time.Duration // a SIGKILLed worker stays down this long

	// fleetRun is how long TestFleetScheduleOncePerTick runs its schedules.
	fleetRun time.Duration

	// drainWithin bounds the wait, after the last fault and the producer's
	// exit, for every task to be executed and the queue to be empty. It
	// must exceed asynq's recovery of a crashed worker's tasks: the 30 s
	// lease, the recoverer's 30 s cutoff and its 1 min period.
	drainWithin time.Duration
}

// lease is asynq v0.26's task lease (internal/rdb LeaseDuration); an outage
// longer than it expires the leases of tasks in flight.
const lease = 30 * time.Second
