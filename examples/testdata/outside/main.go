// Command outside is the outside-module test's program: built in a module of
// its own, it uses taskhost only through its public API, from a Config that
// names the Redis URL, and prints one line per check.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/plugins"
)

type sumArgs struct{ A, B int }

// adder handles outside:sum by writing A+B to the cache.
type adder struct{}

func (adder) PluginInfo() plugins.Info {
	return plugins.Info{ID: "outside", New: func() plugins.Plugin { return adder{} }}
}

func (adder) Provision(_ context.Context, h plugins.Host) error {
	store := h.Cache()
	plugins.Handle(h, "outside:sum", func(ctx context.Context, a sumArgs) error {
		return cache.SetJSON(ctx, store, "sum", a.A+a.B, time.Minute)
	})
	return nil
}

func init() { plugins.Register(adder{}) }

func main() {
	if err := run(); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := taskhost.Config{Redis: taskhost.RedisConfig{URL: os.Getenv("REDIS_URL")}}
	if err := cfg.Validate(); err != nil {
		return err
	}
	fmt.Println("config: valid from the Redis URL alone")
	// On a shared test machine the health listener takes a free port, and
	// the program's plugin is enabled.
	cfg.Health.Addr = "127.0.0.1:0"
	cfg.Plugins = map[string]map[string]any{"outside": nil}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rt, err := taskhost.New(cfg, taskhost.Options{})
	if err != nil {
		return err
	}
	if err := rt.Start(ctx); err != nil {
		return err
	}
	defer func() {
		if err := rt.Stop(context.Background()); err != nil {
			fmt.Println("FAIL: stop:", err)
		}
	}()
	if err := rt.WaitReady(ctx); err != nil {
		return err
	}
	fmt.Println("state:", rt.State())

	// The outbox client, and a task processed in this process.
	client := rt.Client()
	defer client.Close()
	task, err := plugins.NewTask("outside:sum", sumArgs{A: 2, B: 3})
	if err != nil {
		return err
	}
	res, err := client.Submit(ctx, task)
	if err != nil {
		return err
	}
	fmt.Println("client: enqueued, held:", res.Held)
	results := rt.Cache().Namespace("outside")
	for {
		sum, err := cache.GetJSON[int](ctx, results, "sum")
		if err == nil {
			fmt.Println("task: processed, sum", sum)
			break
		}
		if !errors.Is(err, cache.ErrNotFound) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the task was not processed: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}

	d, err := rt.Diagnostics(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("diagnostics: state %s, version set %t, dbsize > 0 %t, used memory > 0 %t\n",
		d.State, d.Version != "", d.DBSize > 0, d.UsedMemory > 0)

	mine := rt.Cache().Namespace("app")
	if err := cache.SetJSON(ctx, mine, "k", map[string]int{"n": 1}, time.Minute); err != nil {
		return err
	}
	got, err := cache.GetJSON[map[string]int](ctx, mine, "k")
	if err != nil {
		return err
	}
	fmt.Println("cache:", got["n"], "from", rt.Cache().Backend())

	lim, err := rt.Limits().Limiter("outside", "2-M")
	if err != nil {
		return err
	}
	allowed := 0
	for range 3 {
		r, err := lim.Allow(ctx, "caller")
		if err != nil {
			return err
		}
		if !r.Reached {
			allowed++
		}
	}
	fmt.Println("limiter:", allowed, "of 3 allowed at 2-M on", rt.Limits().Backend())
	return nil
}
