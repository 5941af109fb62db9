package taskhostcmd

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/taskhost/taskhost"
)

// runReload asks a running worker to reload its config: by POST /reload on
// its admin listener (the default: it prints what was applied or refused),
// or by SIGHUP to -pid (the worker only logs the outcome). Without a URL the
// listener is found as worker health finds it (adminFlags.url): health.addr
// from the -config file, HEALTH_ADDR, then -health-addr. The listener takes
// the request from loopback only, so run it on the worker's host or in its
// container.
func runReload(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("worker reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the answer")
	pid := fs.Int("pid", 0, "send SIGHUP to this process instead of asking the admin listener")
	admin := addAdminFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: worker reload [-config FILE] [-health-addr host:port] [-timeout 30s] [URL]\n"+
			"       worker reload -pid N\n\n"+
			"Asks the worker to read its config again and apply what can change without a restart.\n"+
			"Without a URL, it POSTs to /reload on health.addr as the worker reads it: the config file,\n"+
			"then HEALTH_ADDR, then -health-addr (127.0.0.1:8080 when none sets it); the worker answers\n"+
			"from loopback only. Exits 0 when the config applied or did not change, 1 when the worker\n"+
			"refused it (a key needs a restart, or the config is invalid) or did not answer, 2 on a usage\n"+
			"or config error.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	if *pid != 0 {
		if fs.NArg() > 0 || admin.set() {
			fmt.Fprintln(stderr, "worker reload: -pid cannot be given with a URL, -config or -health-addr")
			return ExitUsage
		}
		if err := syscall.Kill(*pid, syscall.SIGHUP); err != nil {
			fmt.Fprintf(stderr, "worker reload: SIGHUP to %d: %v\n", *pid, err)
			return ExitFailure
		}
		fmt.Fprintf(stdout, "sent SIGHUP to %d; the worker logs whether the config applied\n", *pid)
		return ExitOK
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(stderr, "worker reload: at most one URL")
		return ExitUsage
	}
	url, fromConfig, err := admin.url(fs.Arg(0), "/reload")
	if err != nil {
		fmt.Fprintf(stderr, "worker reload: %v\n", err)
		return ExitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "worker reload: %v\n", err)
		return ExitUsage
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "worker reload: %v\n", err)
		return ExitFailure
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if fromConfig && resp.Header.Get(taskhost.WorkerHeader) == "" {
		fmt.Fprintf(stderr, "worker reload: %s answered %d but is not a taskhost worker's admin listener (no %s header); is health.addr right?\n",
			url, resp.StatusCode, taskhost.WorkerHeader)
		return ExitFailure
	}
	var res taskhost.ReloadResult
	if err := json.Unmarshal(body, &res); err != nil || res.Outcome == "" {
		fmt.Fprintf(stderr, "worker reload: %s: %s\n", resp.Status, strings.TrimSpace(string(body)))
		return ExitFailure
	}
	line := fmt.Sprintf("%s generation=%d", res.Outcome, res.Generation)
	if len(res.Applied) > 0 {
		line += " keys=" + strings.Join(res.Applied, ",")
	}
	if res.Error != "" {
		line += ": " + res.Error
	}
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "worker reload: "+line)
		return ExitFailure
	}
	fmt.Fprintln(stdout, line)
	return ExitOK
}
