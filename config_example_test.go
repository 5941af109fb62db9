package taskhost_test

import (
	"errors"
	"fmt"

	"github.com/taskhost/taskhost"
)

func ExampleLoadConfig() {
	_, err := taskhost.LoadConfig(taskhost.LoadOptions{
		Environ: []string{"REDIS_PORT=abc", "WORKER_CONCURRENCY=0", "HOME=/root"},
		Flags:   map[string]any{"redis.url": "redis://app:s3cret@redis.internal:6379/db0"},
	})
	fmt.Println(err)
	fmt.Println("exit 2:", errors.Is(err, taskhost.ErrInvalidConfig))
	// Output:
	// invalid configuration (3 problems):
	//   redis.url: has a path that is not a database number (integer 0-1023) (expected redis://[user:password@]host:port[/db] or rediss://...) (from the command line)
	//   redis.port: "abc" is not a port number (integer 1-65535) (from REDIS_PORT)
	//   worker.concurrency: 0 is not a concurrency (integer 1-10000) (from WORKER_CONCURRENCY)
	// exit 2: true
}

func ExampleConfig_Redacted() {
	cfg := taskhost.DefaultConfig()
	cfg.Redis.URL = "redis://app:s3cret@redis.internal:6379/0"
	cfg.UI.Auth.Token = "t0ken"
	r := cfg.Redacted()
	fmt.Println(r.Redis.URL, r.UI.Auth.Token)
	// Output:
	// redis://app:***@redis.internal:6379/0 ***
}

// A program names what it needs; every zero field takes its default.
func ExampleConfig_WithDefaults() {
	cfg := taskhost.Config{Redis: taskhost.RedisConfig{URL: "redis://redis.internal:6379/0"}}
	fmt.Println(cfg.Validate())
	full := cfg.WithDefaults()
	fmt.Println(full.Worker.Concurrency, full.Worker.Queues, full.Redis.DialTimeout, full.UI.ReadOnly)
	// A zero set after WithDefaults is taken as it is.
	full.Worker.MaxRetry = 0
	fmt.Println(full.WithDefaults().Worker.MaxRetry)
	// Output:
	// <nil>
	// 10 map[default:1] 500ms true
	// 0
}

func ExampleState() {
	fmt.Println(taskhost.StateConnecting, taskhost.StateReady, taskhost.StateReconnecting, taskhost.StateDown, taskhost.StateClosed)
	// Output: connecting ready reconnecting down closed
}
