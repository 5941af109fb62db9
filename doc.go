// Package taskhost is a runtime for background workers on asynq: one process
// owns one Redis connection and serves the queue, a cache and a rate limiter from it.
//
// Build a Config (DefaultConfig, LoadConfig, or a literal whose zero fields
// take the defaults), create a Runtime with New, then Start and Stop it or Run
// it until its context ends. Plugins register themselves from init (package
// plugins); the Runtime provisions the ones named under plugins: in the config.
//
// LoadConfig reads the layers in order: defaults, the -dev overlay, the YAML
// file, the environment, then flags. Environment names are a key's path in
// upper case with "_" for "." (redis.dial_timeout is REDIS_DIAL_TIMEOUT),
// matched against the known keys; lists are comma-separated, maps are
// name=value pairs (WORKER_QUEUES=critical=6,default=3), and plugin keys are
// PLUGINS_<ID>_<KEY>. Every config error matches ErrInvalidConfig and names its
// key and the form it expects; Redacted, String and LogValue never show a
// secret.
package taskhost
