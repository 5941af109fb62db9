// Package canary is the built-in plugin "canary": an end-to-end probe that
// proves the scheduler, Redis, the queue and a handler work together.
//
// On Provision it schedules a canary:tick task on plugins.canary.every (a
// cron spec, default "@every 30s"). Its handler writes the time of the tick
// into the shared cache, and a non-critical health check, "tick", fails when
// the last tick is older than plugins.canary.stale_after (default 2m), which
// makes the health report "degraded". For stale_after after start, a missing
// tick is not yet a failure.
//
//	plugins:
//	  canary:
//	    every: "@every 30s"
//	    stale_after: 2m
//
// The tick is stored under the plugin's cache namespace, so every worker on
// one Redis sees the last tick of any of them.
package canary
