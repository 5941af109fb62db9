package taskhostcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/internal/quarantine"
	"github.com/taskhost/taskhost/internal/redisconn"
)

// queueList is a repeatable -queue flag.
type queueList []string

func (q *queueList) String() string     { return strings.Join(*q, ",") }
func (q *queueList) Set(v string) error { *q = append(*q, v); return nil }

// runDoctor scans every task of the queues for poison (a missing, an
// undecodable or an incomplete task hash, a message larger than
// worker.max_payload_bytes allows), moves what it finds aside as the
// worker's guard would (unless -dry-run), and lists each queue's
// quarantine. Exit 0: no poison left; 1: poison found with -dry-run, a
// repair failed, or Redis could not be read; 2: a usage or config error.
func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("worker doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dry := fs.Bool("dry-run", false, "list what would be repaired; change nothing")
	path := fs.String("config", "./config.yaml", "config file `path`")
	dev := fs.Bool("dev", false, "use the -dev worker's embedded Redis at redis.embedded.addr")
	var only queueList
	fs.Var(&only, "queue", "scan only this `queue` (repeatable; default: every queue in Redis and in worker.queues)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: worker doctor [-dry-run] [-queue Q]... [-config PATH] [-dev]\n\n"+
			"Finds poison tasks (missing, undecodable or incomplete task hashes, oversized messages),\n"+
			"moves them aside as the worker does, and lists each queue's quarantine.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "worker doctor: unexpected argument %q\n", fs.Arg(0))
		return ExitUsage
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := taskhost.LoadConfig(taskhost.LoadOptions{Path: *path, PathExplicit: explicit, Dev: *dev})
	if err != nil {
		fmt.Fprintf(stderr, "worker doctor: config: %v\n", err)
		return ExitUsage
	}
	quietRedis.Do(func() { redis.SetLogger(redisconn.LibraryLogger(slog.New(slog.DiscardHandler))) })
	rc := cfg.Redis
	add := quarantine.QueueAllowance(cfg.Worker.MaxPayloadBytes)
	rc.ReadTimeout += add
	rc.WriteTimeout += add
	rdb, err := taskhost.NewRedisClient(rc, nil)
	if err != nil {
		fmt.Fprintf(stderr, "worker doctor: %v\n", err)
		return ExitUsage
	}
	defer rdb.Close()

	queues := []string(only)
	if len(queues) == 0 {
		known, err := rdb.SMembers(ctx, "asynq:queues").Result()
		if err != nil {
			fmt.Fprintf(stderr, "worker doctor: Redis (%s): %v\n", cfg.Redis.Target(), err)
			return ExitFailure
		}
		for q := range cfg.Worker.Queues {
			known = append(known, q)
		}
		slices.Sort(known)
		queues = slices.Compact(known)
	}

	g := quarantine.New(quarantine.Options{MaxPayloadBytes: cfg.Worker.MaxPayloadBytes, Logger: slog.New(slog.DiscardHandler)})
	found, unfixed := 0, 0
	for _, q := range queues {
		err := g.ScanQueue(ctx, rdb, q, !*dry, func(f quarantine.Finding) {
			found++
			action := "none (dry run)"
			switch {
			case f.Fixed && f.Reason == quarantine.ReasonOversized:
				action = "archived"
			case f.Fixed:
				action = "quarantined"
			case !*dry:
				unfixed++
				action = "left (active: archived unread when its lease expires)"
			default:
				unfixed++
			}
			fmt.Fprintf(stdout, "poison queue=%s id=%s state=%s problem=%s size=%d action=%s detail=%q\n",
				f.Queue, f.ID, f.State, f.Reason, f.Size, action, f.Detail)
		})
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return ExitFailure
			}
			fmt.Fprintf(stderr, "worker doctor: %v\n", err)
			return ExitFailure
		}
	}
	held := 0
	for _, q := range queues {
		entries, err := quarantine.List(ctx, rdb, q)
		if err != nil {
			fmt.Fprintf(stderr, "worker doctor: list %s: %v\n", quarantine.QuarantineKey(q), err)
			return ExitFailure
		}
		for _, e := range entries {
			held++
			fmt.Fprintf(stdout, "quarantined queue=%s id=%s from=%s at=%s reason=%q key=%s:%s\n",
				e.Queue, e.ID, e.From, e.At.UTC().Format("2006-01-02T15:04:05Z"), e.Reason, quarantine.QuarantineKey(q), e.ID)
		}
	}
	fmt.Fprintf(stdout, "doctor: queues=%d poison=%d repaired=%d left=%d quarantined=%d\n",
		len(queues), found, found-unfixed, unfixed, held)
	if unfixed > 0 {
		return ExitFailure
	}
	return ExitOK
}
