// Package cache is taskhost's key-value cache: a Store interface with Redis,
// memory and fallback implementations, the fallback switched by the runtime.
package cache
