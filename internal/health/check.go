package health

import "github.com/taskhost/taskhost/healthcheck"

// The check types are package healthcheck's, where plugins find them; the
// registry, the report and the server that run them are here.
type (
	Check       = healthcheck.Check
	CheckStatus = healthcheck.CheckStatus
	CheckResult = healthcheck.CheckResult
)

// The outcomes of a check.
const (
	CheckOK      = healthcheck.CheckOK
	CheckFail    = healthcheck.CheckFail
	CheckTimeout = healthcheck.CheckTimeout
)

// Errors returned by Registry.Add.
var (
	ErrDuplicateCheck = healthcheck.ErrDuplicateCheck
	ErrInvalidCheck   = healthcheck.ErrInvalidCheck
)
