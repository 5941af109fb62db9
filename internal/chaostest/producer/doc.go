// Command producer enqueues the chaos suite's tasks through the outbox client on a file outbox, resumes
// after a crash from its progress file, flushes and exits 0; internal/chaostest builds and runs it.
package main
