// Package quarantine keeps poison tasks from stopping a queue: it guards asynq's dequeue and
// lease-recovery scripts, scans the queues in bounded steps, and moves undecodable, incomplete
// or oversized task hashes aside, where `worker doctor` lists them.
package quarantine
