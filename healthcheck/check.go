package healthcheck

import (
	"context"
	"time"
)

// Check is one named health check.
type Check struct {
	// Name identifies the check in the report; plugins' checks are prefixed with the plugin ID.
	Name string
	// Critical checks make the report "down" when they fail; others make it "degraded".
	Critical bool
	// Timeout bounds Run; zero means the registry's default.
	Timeout time.Duration
	// Run returns nil when healthy.
	Run func(ctx context.Context) error
}
