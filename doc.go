// Package taskhost is a runtime for background workers on asynq: one process
// owns one Redis connection and serves the queue, a cache and a rate limiter from it.
//
// There are two ways in. Operators run the worker binary (cmd/worker, or a
// team's own built on package taskhostcmd), configured by config.yaml, the
// environment and flags. Programs embed the runtime:
//
//	rt, err := taskhost.New(taskhost.Config{Redis: taskhost.RedisConfig{URL: os.Getenv("REDIS_URL")}}, taskhost.Options{})
//	...
//	err = rt.Run(ctx) // or Start, then Stop
//
// A Config built in Go needs only what differs from the defaults: New fills
// its zero fields (Config.WithDefaults). DefaultConfig and LoadConfig give a
// complete Config; LoadConfig reads the layers in order: defaults, the -dev
// overlay, the YAML file, the environment, then flags. Environment names are
// a key's path in upper case with "_" for "." (redis.dial_timeout is
// REDIS_DIAL_TIMEOUT), matched against the known keys; lists are
// comma-separated, maps are name=value pairs (WORKER_QUEUES=critical=6,default=3),
// and plugin keys are PLUGINS_<ID>_<KEY>. Every config error matches
// ErrInvalidConfig and names its key and the form it expects; Redacted,
// String and LogValue never show a secret.
//
// A Runtime serves, from its one connection: the shared client (Redis), its
// state (State, Ready, Subscribe, WaitReady), Diagnostics and FlushDB; the
// shared cache (Cache) and rate limiter (Limits), which fall back to memory
// while Redis is down; the enqueue Client, whose outbox holds tasks while
// Redis is down; health checks (AddCheck) at /healthz. Task handlers are
// plugins (package plugins), registered from init and enabled under
// Config.Plugins; they run on the runtime's queue server in the same process.
package taskhost
