package taskhostcmd

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// runHealth probes /readyz and exits 0 when it answers 200, 1 otherwise.
// Containers without curl use it as their health check.
func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("worker health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for an answer")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: worker health [-timeout 2s] [URL]\n\nProbes URL (default http://$HEALTH_ADDR/readyz, HEALTH_ADDR defaulting to 127.0.0.1:8080) and exits 0 when it answers 200.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(stderr, "worker health: at most one URL")
		return ExitUsage
	}
	url := adminURL(fs.Arg(0), "/readyz")
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
	fmt.Fprintf(stdout, "%d %s\n", resp.StatusCode, strings.TrimSpace(string(body)))
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
	if strings.HasPrefix(addr, "0.0.0.0:") || strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1:" + addr[strings.LastIndex(addr, ":")+1:]
	}
	return "http://" + addr + path
}

// usageExit maps a flag parse error to an exit code: -h is not an error.
func usageExit(err error) int {
	if err == flag.ErrHelp {
		return ExitOK
	}
	return ExitUsage
}
