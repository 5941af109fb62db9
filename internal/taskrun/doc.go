// Package taskrun runs one task at a time through asynq's own processor on
// an in-process Redis, so that a handler under test gets the context asynq
// gives it in a worker: task ID, retry count, max retry, queue and deadline.
//
// plugins/pluginstest runs handlers with it. It holds the asynq v0.26.0
// facts it depends on: where a task's message lives and which field of it
// counts the retries.
package taskrun
