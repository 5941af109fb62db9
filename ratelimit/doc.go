// Package ratelimit limits rates with ulule/limiter on Redis, counting per instance in memory while
// Redis is not ready, with asynq task middleware, net/http middleware and LimitedError.
package ratelimit
