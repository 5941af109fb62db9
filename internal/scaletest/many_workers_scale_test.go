//go:build scale

package scaletest

import "testing"

// TestManyWorkersScale is the long variant of TestManyWorkers: 20,000 tasks,
// 4 workers then 1 worker, two interleaved rounds. Run it without -race for
// throughput figures:
//
//	go test -tags scale -count=1 -run TestManyWorkersScale -v ./internal/scaletest/
func TestManyWorkersScale(t *testing.T) {
	bin := buildNoopWorker(t)
	const n = 20000
	for round := 1; round <= 2; round++ {
		four := runManyWorkers(t, bin, 4, n)
		t.Logf("round %d, 4 workers: %s", round, four)
		one := runManyWorkers(t, bin, 1, n)
		t.Logf("round %d, 1 worker:  %s", round, one)
		t.Logf("round %d, 4 workers / 1 worker throughput: %.2f (race=%v)", round, four.rate/one.rate, raceEnabled)
	}
}
