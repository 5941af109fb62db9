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
// or by SIGHUP to -pid (the worker only logs the outcome). The listener
// takes the request from loopback only, so run it on the worker's host or
// in its container.
func runReload(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("worker reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the answer")
	pid := fs.Int("pid", 0, "send SIGHUP to this process instead of asking the admin listener")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: worker reload [-timeout 30s] [URL]\n       worker reload -pid N\n\n"+
			"Asks the worker to read its config again and apply what can change without a restart.\n"+
			"URL defaults to http://$HEALTH_ADDR/reload (HEALTH_ADDR defaulting to 127.0.0.1:8080);\n"+
			"the worker answers from loopback only. Exits 0 when the config applied or did not change,\n"+
			"1 when the worker refused it (a key needs a restart, or the config is invalid).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	if *pid != 0 {
		if fs.NArg() > 0 {
			fmt.Fprintln(stderr, "worker reload: -pid and a URL cannot both be given")
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
	url := adminURL(fs.Arg(0), "/reload")
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
