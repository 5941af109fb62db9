package ratelimit_test

import (
	"context"
	"fmt"

	"github.com/taskhost/taskhost/ratelimit"
)

// A registry without a Redis client counts in memory. The runtime's
// registry counts on Redis while its connection monitor says Redis is ready.
func ExampleRegistry_Limiter() {
	reg, err := ratelimit.New(nil, ratelimit.Options{})
	if err != nil {
		panic(err)
	}
	defer reg.Close()

	signups, err := reg.Limiter("signup", "2-M")
	if err != nil {
		panic(err)
	}
	for range 3 {
		res, err := signups.Allow(context.Background(), "203.0.113.7")
		if err != nil {
			panic(err)
		}
		fmt.Printf("reached=%t remaining=%d\n", res.Reached, res.Remaining)
	}
	fmt.Println("backend:", reg.Backend())
	// Output:
	// reached=false remaining=1
	// reached=false remaining=0
	// reached=true remaining=0
	// backend: memory
}

func ExampleParseRate() {
	r, err := ratelimit.ParseRate("1000-H")
	fmt.Println(r.Limit, r.Period, err)
	_, err = ratelimit.ParseRate("1000/h")
	fmt.Println(err)
	// Output:
	// 1000 1h0m0s <nil>
	// "1000/h" is not a rate (<limit>-<S|M|H|D>, e.g. 10-S or 1000-H)
}
