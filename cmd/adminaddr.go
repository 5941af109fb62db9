package taskhostcmd

import (
	"flag"
	"fmt"
	"net"
	"strings"

	"github.com/taskhost/taskhost"
)

// adminFlags are the flags of the commands that talk to a running worker's
// admin listener (worker health, worker reload): where to find health.addr.
type adminFlags struct {
	fs   *flag.FlagSet
	path *string
	addr *string
}

// addAdminFlags adds -config and -health-addr to fs.
func addAdminFlags(fs *flag.FlagSet) *adminFlags {
	return &adminFlags{
		fs:   fs,
		path: fs.String("config", taskhost.DefaultPath, "config file `path` whose health.addr to use, as the worker reads it"),
		addr: fs.String("health-addr", "", "admin listener `host:port` (config key health.addr)"),
	}
}

// set reports whether the user gave -config or -health-addr.
func (a *adminFlags) set() bool {
	set := false
	a.fs.Visit(func(f *flag.Flag) { set = set || f.Name == "config" || f.Name == "health-addr" })
	return set
}

// url is the URL of path on the worker's admin listener. With arg (a URL, or
// a host:port) it is arg, with path added when arg has none. Without arg it
// is on health.addr as the worker reads it: defaults, the -config file (a
// missing default file is no error, a missing named one is), HEALTH_ADDR,
// then -health-addr; a wildcard host is dialled on loopback. fromConfig says
// the address came from the config, not from arg. err (a config error) is
// for exit code ExitUsage.
func (a *adminFlags) url(arg, path string) (url string, fromConfig bool, err error) {
	if arg != "" {
		if !strings.Contains(arg, "://") {
			arg = "http://" + arg
		}
		if strings.Count(arg, "/") == 2 { // no path
			arg += path
		}
		return arg, false, nil
	}
	opts := taskhost.LoadOptions{Path: *a.path, Flags: map[string]any{}}
	a.fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "config":
			opts.PathExplicit = true
		case "health-addr":
			opts.Flags["health.addr"] = *a.addr
		}
	})
	cfg, err := taskhost.LoadConfig(opts)
	if err != nil {
		return "", false, fmt.Errorf("config: %w", err)
	}
	return "http://" + dialable(cfg.Health.Addr) + path, true, nil
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
