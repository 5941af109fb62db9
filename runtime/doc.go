// Package runtime owns a worker's lifetime: the Redis connection and its
// monitor, asynq's server, scheduler and inspector, the plugin host, and the order of start and stop.
package runtime
