package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost/internal/outbox"
	"github.com/taskhost/taskhost/internal/redisconn"
)

// TaskType is the chaos plugin's task type.
const TaskType = "chaos:record"

// Progress file marks, one line "<seq> <mark>" per accepted task.
const (
	markDirect  = "d" // Redis took it at once
	markHeld    = "h" // held in the outbox
	markPresent = "p" // Redis already had it (a resubmit after a crash)
)

func main() { os.Exit(run()) }

func run() int {
	var (
		redisURL     = flag.String("redis-url", "", "Redis URL of the queue")
		outboxPath   = flag.String("outbox", "", "outbox file")
		progressPath = flag.String("progress", "", "progress file: one line per accepted task")
		n            = flag.Int("n", 1000, "number of tasks")
		rate         = flag.Float64("rate", 100, "tasks per second")
		prefix       = flag.String("prefix", "chaos-", "task ID prefix; IDs are prefix + 6-digit sequence")
		flushTimeout = flag.Duration("flush-timeout", 10*time.Minute, "how long to wait for the outbox to drain at the end")
	)
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if *redisURL == "" || *outboxPath == "" || *progressPath == "" {
		fmt.Fprintln(os.Stderr, "producer: -redis-url, -outbox and -progress are required")
		return 2
	}
	next, err := resumeFrom(*progressPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		return 1
	}
	progress, err := os.OpenFile(*progressPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		return 1
	}
	defer progress.Close()

	cfg := redisconn.DefaultConfig()
	cfg.URL = *redisURL
	rdb, err := redisconn.NewClient(cfg, redisconn.WithLogger(log))
	if err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		return 1
	}
	defer rdb.Close()
	mon := redisconn.NewMonitor(rdb, redisconn.MonitorOptionsFrom(cfg, log))
	store, err := outbox.OpenFile(*outboxPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		return 1
	}
	client, err := outbox.New(asynq.NewClientFromRedisClient(rdb), mon.Ready, outbox.Options{Store: store, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		return 1
	}
	unsub := mon.Subscribe(func(_, to redisconn.State) {
		if to == redisconn.Ready {
			client.Kick()
		}
	})
	mon.Start()
	held, _ := client.Depth()
	log.Info("producer started", "from", next, "n", *n, "held_in_outbox", held)

	ctx := context.Background()
	start := time.Now()
	counts := map[string]int{}
	for seq := next; seq < *n; seq++ {
		if d := time.Until(start.Add(time.Duration(float64(seq-next) / *rate * float64(time.Second)))); d > 0 {
			time.Sleep(d)
		}
		mark := submit(ctx, client, log, seq, *prefix)
		counts[mark]++
		if _, err := fmt.Fprintf(progress, "%d %s\n", seq, mark); err != nil {
			fmt.Fprintln(os.Stderr, "producer: progress:", err)
			return 1
		}
	}
	fctx, cancel := context.WithTimeout(ctx, *flushTimeout)
	ferr := client.Flush(fctx)
	cancel()
	unsub()
	cerr := client.Close()
	mon.Close()
	fmt.Printf("producer: from=%d to=%d direct=%d held=%d present=%d took=%s\n",
		next, *n, counts[markDirect], counts[markHeld], counts[markPresent], time.Since(start).Round(time.Millisecond))
	if err := errors.Join(ferr, cerr); err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		return 1
	}
	return 0
}

// submit enqueues task seq until the outbox client accepts it, and returns
// how it was accepted.
func submit(ctx context.Context, client *outbox.Client, log *slog.Logger, seq int, prefix string) string {
	id := fmt.Sprintf("%s%06d", prefix, seq)
	payload, _ := json.Marshal(map[string]int{"seq": seq})
	for attempt := 1; ; attempt++ {
		res, err := client.Submit(ctx, asynq.NewTask(TaskType, payload), asynq.TaskID(id))
		switch {
		case err == nil && res.Held:
			return markHeld
		case err == nil:
			return markDirect
		case errors.Is(err, asynq.ErrTaskIDConflict):
			return markPresent
		}
		if attempt == 1 || attempt%100 == 0 {
			log.Warn("submit failed; retrying", "task_id", id, "attempt", attempt, "error", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// resumeFrom returns the sequence number after the last one in the
// progress file, or 0 when there is none. A torn last line is ignored.
func resumeFrom(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	next := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 2 {
			continue
		}
		if seq, err := strconv.Atoi(fields[0]); err == nil && seq+1 > next {
			next = seq + 1
		}
	}
	return next, sc.Err()
}
