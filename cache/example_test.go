package cache_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/taskhost/taskhost/cache"
)

func Example() {
	ctx := context.Background()
	m := cache.NewMemory(cache.Options{MemoryMaxEntries: 1000, MaxValueBytes: 1 << 10})
	defer m.Close()
	s := m.Namespace("greeter") // each plugin gets its own namespace

	type profile struct {
		Name string `json:"name"`
	}
	_ = cache.SetJSON(ctx, s, "user:1", profile{Name: "Ada"}, time.Minute)
	p, _ := cache.GetJSON[profile](ctx, s, "user:1")
	fmt.Println(p.Name)

	_, err := s.Get(ctx, "user:2")
	fmt.Println(errors.Is(err, cache.ErrNotFound))

	v, _ := s.GetOrLoad(ctx, "greeting", time.Minute, func(context.Context) ([]byte, error) {
		return []byte("hello"), nil // called once; later calls hit the cache
	})
	fmt.Println(string(v))

	err = s.Set(ctx, "big", make([]byte, 2048), time.Minute)
	fmt.Println(err)
	// Output:
	// Ada
	// true
	// hello
	// cache: value too large: 2048 bytes for key "big" exceed the limit of 1024 bytes (cache.max_value_bytes)
}
