//go:build scale

package scaletest

import "testing"

// TestRuntimeClusterOtherMasterFailover is TestRuntimeClusterMasterFailover
// with a master other than the marker key's killed: the monitor stays
// ready, the queues of the live masters go on, and the outbox holds only
// the enqueues that failed against the dead master. Run it with
// `go test -tags scale -run TestRuntimeClusterOtherMasterFailover -v ./internal/scaletest/`.
func TestRuntimeClusterOtherMasterFailover(t *testing.T) {
	runClusterMasterFailover(t, false)
}
