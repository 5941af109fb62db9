// Package ratelimit limits rates with ulule/limiter over a Redis store that
// falls back to memory, with asynq and net/http middleware.
package ratelimit
