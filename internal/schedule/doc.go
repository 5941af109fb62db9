// Package schedule is taskhost's scheduler of periodic tasks: every worker of a fleet computes the
// same tick times and enqueues each tick under a task ID derived from it, so Redis keeps one copy.
package schedule
