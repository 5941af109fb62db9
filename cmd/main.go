package taskhostcmd

import (
	"context"
	"io"
	"os"
)

// Exit codes.
const (
	ExitOK      = 0 // a clean stop
	ExitFailure = 1 // a runtime failure, or a forced stop
	ExitUsage   = 2 // a config or usage error
	// ExitUnknown is worker enqueue's "the outcome is unknown": the task
	// was sent but no answer came. Its message holds the task ID; a retry
	// with -id cannot enqueue the task twice.
	ExitUnknown = 3
)

// Version is the worker's version, set at build time with
// -ldflags "-X github.com/taskhost/taskhost/cmd.Version=v1.2.3".
var Version = "dev"

// Main runs the worker command with os.Args and exits with its code.
func Main() {
	os.Exit(Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Run runs the worker command with args (without the program name) and
// returns the exit code. Subcommands: health, enqueue, doctor, reload;
// otherwise the worker.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "health":
			return runHealth(ctx, args[1:], stdout, stderr)
		case "enqueue":
			return runEnqueue(ctx, args[1:], stdout, stderr)
		case "doctor":
			return runDoctor(ctx, args[1:], stdout, stderr)
		case "reload":
			return runReload(ctx, args[1:], stdout, stderr)
		}
	}
	return runWorker(ctx, args, stdout, stderr)
}
