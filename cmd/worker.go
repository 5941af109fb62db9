package taskhostcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/taskhost/taskhost"
)

// workerFlags are the worker's flags. Those that set config keys are the
// last config layer, over defaults, file and environment.
type workerFlags struct {
	fs          *flag.FlagSet
	path        string
	dev         bool
	checkConfig bool
	version     bool
	// flag name -> config key, for flags that override config.
	keys map[string]string
}

func newWorkerFlags(stderr io.Writer) *workerFlags {
	f := &workerFlags{fs: flag.NewFlagSet("worker", flag.ContinueOnError), keys: map[string]string{}}
	f.fs.SetOutput(stderr)
	f.fs.StringVar(&f.path, "config", "./config.yaml", "config file `path`")
	f.fs.BoolVar(&f.dev, "dev", false, "development mode: an in-process Redis on redis.embedded.addr ("+
		taskhost.DefaultConfig().Redis.Embedded.Addr+"; REDIS_EMBEDDED_ADDR to change it) and the built-in plugins")
	f.fs.BoolVar(&f.checkConfig, "check-config", false, "validate the config and exit 0 (valid) or 2 (invalid)")
	f.fs.BoolVar(&f.version, "version", false, "print the version and exit")
	f.override("redis-url", "redis.url", "Redis `URL` (redis:// or rediss://)")
	f.override("health-addr", "health.addr", "health listener `host:port`")
	f.override("log-level", "log.level", "log `level`: debug, info, warn or error")
	f.override("log-format", "log.format", "log `format`: text or json")
	f.override("concurrency", "worker.concurrency", "tasks processed at once (`n`)")
	f.fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: worker [flags]\n       worker health [-config FILE] [URL]\n       worker enqueue -type T -payload JSON [flags]\n       worker doctor [-dry-run] [flags]\n       worker reload [-config FILE] [-pid N | URL]\n\nflags:")
		f.fs.PrintDefaults()
	}
	return f
}

func (f *workerFlags) override(name, key, usage string) {
	f.keys[name] = key
	f.fs.String(name, "", usage+" (config key "+key+")")
}

// loadOptions turns the flags the user set into config load options.
func (f *workerFlags) loadOptions() taskhost.LoadOptions {
	// The worker reports the plugins' problems with the rest, in one error.
	opts := taskhost.LoadOptions{Path: f.path, Dev: f.dev, Flags: map[string]any{}, CheckPlugins: true}
	f.fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "config" {
			opts.PathExplicit = true
		}
		if key, ok := f.keys[fl.Name]; ok {
			opts.Flags[key] = fl.Value.String()
		}
	})
	return opts
}

func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newWorkerFlags(stderr)
	if err := f.fs.Parse(args); err != nil {
		return usageExit(err)
	}
	if f.fs.NArg() > 0 {
		fmt.Fprintf(stderr, "worker: unexpected argument %q; see worker -h\n", f.fs.Arg(0))
		return ExitUsage
	}
	if f.version {
		fmt.Fprintln(stdout, "taskhost worker", Version)
		return ExitOK
	}
	cfg, err := taskhost.LoadConfig(f.loadOptions())
	if err == nil && f.checkConfig {
		err = taskhost.CheckConfig(ctx, cfg) // also builds what New builds
	}
	if err != nil {
		fmt.Fprintf(stderr, "worker: config: %v\n", err)
		if errors.Is(err, taskhost.ErrInvalidConfig) {
			return ExitUsage
		}
		return ExitFailure
	}
	if f.checkConfig {
		fmt.Fprintln(stdout, "config ok")
		return ExitOK
	}

	log := taskhost.NewLogger(cfg.Log, stderr)
	slog.SetDefault(log) // libraries that log through the default logger use the same format
	loadOpts := f.loadOptions()
	rt, err := taskhost.New(cfg, taskhost.Options{Logger: log, Version: Version,
		// SIGHUP and `worker reload` read the same layers again.
		ConfigSource: func(context.Context) (taskhost.Config, error) { return taskhost.LoadConfig(loadOpts) }})
	if err != nil {
		fmt.Fprintf(stderr, "worker: %v\n", err)
		if errors.Is(err, taskhost.ErrInvalidConfig) {
			return ExitUsage
		}
		return ExitFailure
	}

	useTracing(rt, log)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGTSTP, syscall.SIGHUP)
	defer func() { signal.Stop(sigs); close(sigs) }()
	go func() {
		stopping := false
		for sig := range sigs {
			switch {
			case sig == syscall.SIGTSTP:
				rt.StopFetching()
			case sig == syscall.SIGHUP:
				// Reload logs its outcome; it never stops the worker.
				go func() { _, _ = rt.Reload(context.Background()) }()
			case !stopping:
				stopping = true
				log.Info("signal received, stopping gracefully; send it again to force", "component", "runtime", "signal", sig.String())
				cancel()
			default:
				log.Error("second signal received, forcing exit", "component", "runtime", "signal", sig.String())
				os.Exit(ExitFailure)
			}
		}
	}()

	if err := rt.Run(ctx); err != nil {
		log.Error("worker failed", "component", "runtime", "error", err)
		if errors.Is(err, taskhost.ErrInvalidConfig) {
			return ExitUsage
		}
		return ExitFailure
	}
	return ExitOK
}
