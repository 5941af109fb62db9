// Package healthcheck is what a plugin or an embedding program needs to add a
// health check: Check, its result and status, and the errors Add returns.
//
// The worker runs the checks and reports them at /healthz (see
// docs/health.md): a failing check makes the report "degraded", or "down"
// when it is Critical. Plugins add theirs with plugins.Host.AddCheck, under
// their ID; programs that embed the runtime with Runtime.AddCheck.
package healthcheck
