package metrics_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/taskhost/taskhost/internal/metrics"
)

func ExampleMetrics_ObserveTask() {
	m := metrics.New()
	m.ObserveTask("email:send", "default", metrics.OutcomeSuccess, 40*time.Millisecond)
	m.ObserveTask("email:send", "default", metrics.OutcomeSuccess, 60*time.Millisecond)
	m.SetState("ready")

	text, _ := testutil.GatherAndFormat(m.Gatherer(), expfmt.TypeTextPlain,
		"taskhost_tasks_processed_total", "taskhost_redis_state")
	for _, line := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(line, "taskhost_") {
			fmt.Println(line)
		}
	}
	// Output:
	// taskhost_redis_state{state="closed"} 0
	// taskhost_redis_state{state="connecting"} 0
	// taskhost_redis_state{state="down"} 0
	// taskhost_redis_state{state="ready"} 1
	// taskhost_redis_state{state="reconnecting"} 0
	// taskhost_tasks_processed_total{outcome="success",queue="default",type="email:send"} 2
}
