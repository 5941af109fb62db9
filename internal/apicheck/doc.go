// Package apicheck holds the test that keeps taskhost's public surface narrow:
// no exported identifier of a public package may mention an internal/ package.
package apicheck
