// Package chaostest runs real worker and producer processes while Redis and workers are killed,
// and checks that every task is executed at least once; `go test -tags chaos` runs the full size.
package chaostest
