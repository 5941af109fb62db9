// Package metrics holds taskhost's Prometheus metrics on a registry of its own:
// task outcomes and durations, Redis state and pool, fallbacks and queue gauges.
package metrics
