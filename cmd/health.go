package taskhostcmd

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/taskhost/taskhost"
)

// runHealth probes a worker's /readyz and exits 0 when it answers 200, 1
// otherwise. Containers without curl use it as their health check.
//
// Without a URL it probes the worker that the config describes: health.addr
// from the same layers as the worker's (defaults, -config file, environment,
// -health-addr), so that it asks this worker and no other. A listener that
// answers but is not a taskhost worker is a failure too.
func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("worker health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for an answer")
	admin := addAdminFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: worker health [-config FILE] [-health-addr host:port] [-timeout 2s] [URL]\n\n"+
			"Probes the worker's /readyz and exits 0 when it answers 200, 1 otherwise, 2 on a usage or config error.\n"+
			"Without a URL, the address is health.addr as the worker reads it: the config file, then HEALTH_ADDR,\n"+
			"then -health-addr.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(stderr, "worker health: at most one URL")
		return ExitUsage
	}
	url, fromConfig, err := admin.url(fs.Arg(0), "/readyz")
	if err != nil {
		fmt.Fprintf(stderr, "worker health: %v\n", err)
		return ExitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "worker health: %v\n", err)
		return ExitUsage
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "worker health: %v\n", err)
		return ExitFailure
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if fromConfig && resp.Header.Get(taskhost.WorkerHeader) == "" {
		fmt.Fprintf(stderr, "worker health: %s answered %d but is not a taskhost worker's health listener (no %s header); is health.addr right?\n",
			url, resp.StatusCode, taskhost.WorkerHeader)
		return ExitFailure
	}
	fmt.Fprintf(stdout, "%d %s (%s)\n", resp.StatusCode, strings.TrimSpace(string(body)), url)
	if resp.StatusCode != http.StatusOK {
		return ExitFailure
	}
	return ExitOK
}

// usageExit maps a flag parse error to an exit code: -h is not an error.
func usageExit(err error) int {
	if err == flag.ErrHelp {
		return ExitOK
	}
	return ExitUsage
}
