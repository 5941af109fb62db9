// Package healthcheck holds the registry of health checks and serves
// /livez, /readyz, /healthz and /metrics over HTTP.
package healthcheck
