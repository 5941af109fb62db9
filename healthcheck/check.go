package healthcheck

import (
	"context"
	"errors"
	"time"
)

// Errors for a check that cannot be added. They come back from
// plugins.Host.AddCheck (as a provisioning error) and Runtime.AddCheck.
var (
	// ErrInvalidCheck is returned for an empty name, a nil Run or a
	// negative timeout.
	ErrInvalidCheck = errors.New("healthcheck: invalid check")
	// ErrDuplicateCheck is returned for a name that is taken.
	ErrDuplicateCheck = errors.New("healthcheck: duplicate check name")
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

// CheckStatus is the outcome of one check or one report section.
type CheckStatus string

// The outcomes of a check.
const (
	CheckOK      CheckStatus = "ok"      // Run returned nil in time
	CheckFail    CheckStatus = "fail"    // Run returned an error or panicked
	CheckTimeout CheckStatus = "timeout" // Run did not return within its timeout or the probe's deadline
)

// CheckResult is one check's line in the report.
type CheckResult struct {
	Name       string      `json:"name"`
	Status     CheckStatus `json:"status"`
	Error      string      `json:"error,omitempty"`
	DurationMS float64     `json:"duration_ms"`
	Critical   bool        `json:"critical"`
}
