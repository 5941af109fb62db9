// Package redistest starts real redis-server processes on free loopback ports
// for tests and benchmarks, and can kill, pause and restart them for fault tests.
package redistest
