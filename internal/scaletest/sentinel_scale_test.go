//go:build scale

package scaletest

import (
	"testing"
	"time"
)

// TestAsynqSentinelFailoverHeavy is the longer variant: 8 producers with
// no pause between enqueues, 5s on each side of the kill. Run it with
// `go test -tags scale -run Heavy -v ./internal/scaletest/`.
func TestAsynqSentinelFailoverHeavy(t *testing.T) {
	res := runFailover(t, failoverRun{producers: 8, before: 5 * time.Second, after: 5 * time.Second})
	t.Logf("sentinel failover (heavy): %s", res)
}
