// Package connerr is taskhost's one answer to "did this Redis call fail because
// Redis cannot serve right now?", shared by the monitor, cache, limiter and outbox.
package connerr
