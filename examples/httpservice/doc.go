// Command httpservice is an HTTP service that embeds taskhost: it enqueues
// through the outbox client, rate-limits with the shared limiter, reads the
// shared cache, and runs its own plugin's task handlers in the same process.
//
//	POST /greet?name=ann    enqueue a greet task (202; "held" while Redis is down)
//	GET  /greeting?name=ann what the handler wrote to the cache (404 until then)
//	GET  /stats             the connection state and the Redis diagnostics
//
// Environment: REDIS_URL, ADDR (default 127.0.0.1:8081), HEALTH_ADDR (the
// runtime's /healthz, default 127.0.0.1:8080), GREET_RATE (default 10-S).
package main
