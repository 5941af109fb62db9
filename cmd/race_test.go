//go:build race

package taskhostcmd_test

// Under -race, the worker binary the tests run is built with -race too.
func init() { buildFlags = append(buildFlags, "-race") }
