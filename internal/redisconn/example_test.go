package redisconn_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/taskhost/taskhost/internal/redisconn"
)

func ExampleDescribe() {
	cfg := redisconn.DefaultConfig()
	cfg.URL = "rediss://worker:hunter2@redis.internal:6379/2?dial_timeout=1s"
	fmt.Println(redisconn.Describe(cfg))
	// Output: standalone rediss://worker:***@redis.internal:6379/2 tls
}

func ExampleParseInfo() {
	info := redisconn.ParseInfo("# Memory\r\nused_memory:1048576\r\nmem_fragmentation_ratio:1.25\r\n" +
		"# Replication\r\nmaster_host:10.0.0.7:6379\r\n")
	fmt.Println(info["used_memory"], info["mem_fragmentation_ratio"], info["master_host"])
	// Output: 1048576 1.25 10.0.0.7:6379
}

// How the runtime wires the connection: one client, one monitor, and
// subscribers that switch on its state. Nothing here waits for Redis.
func ExampleNewMonitor() {
	cfg := redisconn.DefaultConfig()
	logger := slog.Default()
	client, err := redisconn.NewClient(cfg, redisconn.WithLogger(logger))
	if err != nil {
		panic(err)
	}
	defer client.Close() // last, after everything that uses it

	mon := redisconn.NewMonitor(client, redisconn.MonitorOptionsFrom(cfg, logger))
	unsubscribe := mon.Subscribe(func(from, to redisconn.State) {
		logger.Info("fallbacks follow the connection", "ready", to == redisconn.Ready)
	})
	defer unsubscribe()
	mon.Start()
	defer mon.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := mon.Wait(ctx, redisconn.Ready); err != nil {
		logger.Warn("redis not ready yet; running on fallbacks", "state", mon.State())
	}
}
