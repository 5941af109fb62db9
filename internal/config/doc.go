// Package config defines taskhost's configuration and loads it in layers:
// defaults, a -dev overlay, the YAML file, the environment, then flags.
//
// Load validates what it loaded and reports every problem at once; each names
// its key and the form it expects, and every error matches ErrInvalid.
//
// Environment names: a key's path in upper case with "_" for "."
// (redis.dial_timeout is REDIS_DIAL_TIMEOUT, health.addr is HEALTH_ADDR),
// matched against the known keys; other variables are ignored. Lists are
// comma-separated (REDIS_SENTINEL_ADDRS=a:26379,b:26379), maps are
// name=value pairs (WORKER_QUEUES=critical=6,default=3), and a variable set
// to "" for a number, duration or boolean is an error. Plugin keys are
// PLUGINS_<ID>_<KEY>, the ID running to the first "_" after PLUGINS_
// (PLUGINS_WEBHOOK_SIGNING_SECRET is plugins.webhook.signing_secret).
//
// Redacted, String and LogValue never show a password, token or secret.
package config
