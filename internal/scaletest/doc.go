// Package scaletest runs asynq, the taskhost runtime and worker processes
// against real Redis Sentinel and Cluster fixtures; it holds only tests.
package scaletest
