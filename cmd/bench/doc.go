// Command bench measures the taskhost runtime against bare asynq on one
// Redis: drain throughput, start latency, Redis commands, RSS and CPU.
//
// Each side's worker runs in a child process (the bench binary re-executed
// with a hidden -child first argument), so its CPU and memory are read from
// /proc apart from the harness. Rounds interleave the sides, and each figure
// is reported as the median with min and max. Run `go run ./cmd/bench -h`
// for the flags and docs/benchmarks.md for the recorded figures.
package main
