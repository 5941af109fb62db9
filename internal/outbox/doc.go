// Package outbox is an asynq enqueue client that holds tasks in a bounded outbox while Redis is unreachable,
// optionally in a file that survives a crash, and delivers them once, by task ID, when Redis is ready again.
package outbox
