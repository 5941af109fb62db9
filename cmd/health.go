package taskhostcmd

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
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
	path := fs.String("config", taskhost.DefaultPath, "config file `path` whose health.addr to probe, as the worker reads it")
	addr := fs.String("health-addr", "", "health listener `host:port` (config key health.addr)")
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
	url, fromConfig := fs.Arg(0), false
	if url != "" {
		url = adminURL(url, "/readyz")
	} else {
		opts := taskhost.LoadOptions{Path: *path, Flags: map[string]any{}}
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "config":
				opts.PathExplicit = true
			case "health-addr":
				opts.Flags["health.addr"] = *addr
			}
		})
		cfg, err := taskhost.LoadConfig(opts)
		if err != nil {
			fmt.Fprintf(stderr, "worker health: config: %v\n", err)
			return ExitUsage
		}
		url, fromConfig = "http://"+dialable(cfg.Health.Addr)+"/readyz", true
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

// adminURL is the URL of path on the admin listener: arg (a URL, or a
// host:port), with path added when arg has none; or, without arg,
// http://$HEALTH_ADDR with path.
func adminURL(arg, path string) string {
	if arg != "" {
		if !strings.Contains(arg, "://") {
			arg = "http://" + arg
		}
		if strings.Count(arg, "/") == 2 { // no path
			arg += path
		}
		return arg
	}
	addr := os.Getenv("HEALTH_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	return "http://" + dialable(addr) + path
}

// dialable turns a listen address into one to dial: a wildcard host (":8080",
// "0.0.0.0:8080", "[::]:8080") is reached on loopback.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// usageExit maps a flag parse error to an exit code: -h is not an error.
func usageExit(err error) int {
	if err == flag.ErrHelp {
		return ExitOK
	}
	return ExitUsage
}
