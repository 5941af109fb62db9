//go:build race

package scaletest

// raceEnabled tells whether the test binary has the race detector.
const raceEnabled = true
