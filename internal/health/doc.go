// Package health runs the worker's health checks and serves /livez, /readyz,
// /healthz and /metrics: the registry, the JSON report, its Redis sections and the listener.
package health
