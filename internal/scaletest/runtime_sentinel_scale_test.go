//go:build scale

package scaletest

import (
	"testing"
	"time"
)

// TestRuntimeSentinelFailoverHeavy is the longer variant of
// TestRuntimeSentinelFailover: 8 producers submitting through the runtime's
// Client, each every 1 ms, 3s on each side of the kill. (With no pause at
// all they fill the outbox's 100,000 tasks during the 2 s failover, and
// Submit then answers ErrOutboxFull, as designed.) Run it with
// `go test -tags scale -run TestRuntimeSentinelFailoverHeavy -v ./internal/scaletest/`.
func TestRuntimeSentinelFailoverHeavy(t *testing.T) {
	runRuntimeFailover(t, runtimeFailoverRun{producers: 8, interval: time.Millisecond, before: 3 * time.Second, after: 3 * time.Second})
}
