package health_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// blocker hands out funcs that block, ignoring their context as a client
// talking to a SIGSTOPped Redis without deadlines would, until release.
type blocker struct {
	release           chan struct{}
	started, returned atomic.Int32
}

func newBlocker(t *testing.T) *blocker {
	b := &blocker{release: make(chan struct{})}
	t.Cleanup(func() {
		close(b.release)
		// every hung func returns; TestMain's goleak checks that nothing stays behind
		require.Eventually(t, func() bool { return b.returned.Load() == b.started.Load() },
			5*time.Second, 5*time.Millisecond)
	})
	return b
}

func (b *blocker) wait() {
	b.started.Add(1)
	defer b.returned.Add(1)
	<-b.release
}
