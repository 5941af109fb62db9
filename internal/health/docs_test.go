package health_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/health"
)

var update = flag.Bool("update", false, "rewrite the example report in docs/health.md")

const docsPath = "../../docs/health.md"

var exampleBlock = regexp.MustCompile("(?s)(<!-- example-report -->\n```json\n)(.*?)(```)")

// exampleReport is a real report from the handler, with sources shaped like
// the runtime's (health.go at the module root) and its clock-dependent fields fixed so
// the example is stable. The story: Redis came back empty half a minute ago,
// the outbox is still delivering what was enqueued during the outage, and
// the canary has not ticked since.
func exampleReport(t *testing.T) health.Report {
	t.Helper()
	var (
		start    = time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
		checked  = start.Add(time.Hour + 2*time.Minute + 30*time.Second)
		back     = checked.Add(-32 * time.Second) // Redis ready again, and empty
		heldFrom = back.Add(-3*time.Minute + 20*time.Second)
	)
	reg := health.NewRegistry(0)
	require.NoError(t, reg.Add(health.Check{Name: "canary.tick", Timeout: time.Second, Run: func(context.Context) error {
		return errors.New("canary: last tick is stale: last tick 4m30s ago, at 2026-01-02T03:58:00Z")
	}}))
	require.NoError(t, reg.Add(health.Check{Name: "runtime.outbox", Run: ok}))
	src := health.Source{
		Connection: func(context.Context) (health.Connection, error) {
			return health.Connection{State: "ready", Since: back, Mode: "standalone",
				Target: "standalone redis://app:" + secret + "@10.0.0.5:6379/0", CameBackEmptyAt: &back}, nil
		},
		Ping: func(context.Context) (time.Duration, error) { return 250 * time.Microsecond, nil },
		Redis: func(context.Context) (health.RedisInfo, error) {
			return health.RedisInfo{Version: "7.2.4", UptimeSeconds: 33, UsedMemoryBytes: 1_512_320,
				UsedMemoryPeakBytes: 1_615_200, MaxMemoryBytes: 268_435_456, MemFragmentationRatio: 1.31,
				ConnectedClients: 14, DBSize: 52}, nil
		},
		Queues: func(context.Context) ([]health.Queue, error) {
			return []health.Queue{
				{Name: "critical", Size: 0, ProcessedToday: 6, ProcessedTotal: 6},
				{Name: "default", Size: 42, Pending: 37, Active: 4, Retry: 1, Completed: 12, LatencySeconds: 1.25,
					ProcessedToday: 153, FailedToday: 2, ProcessedTotal: 153, FailedTotal: 2},
			}, nil
		},
		Fleet: func(context.Context) (health.Fleet, error) {
			return health.Fleet{Role: "peer", Workers: 3, Servers: 12}, nil
		},
		Schedules: func(context.Context) ([]health.Schedule, error) {
			next, last := checked.Add(30*time.Second), checked.Add(-30*time.Second)
			return []health.Schedule{{Name: "plugins.canary.canary:tick", Spec: "@every 30s", Type: "canary:tick", Queue: "default",
				NextRun: &next, LastRun: &last, LastResult: "duplicate",
				Ticks: map[string]uint64{"enqueued": 41, "duplicate": 80, "unique_locked": 0, "missed": 6}}}, nil
		},
		Fallbacks: func(context.Context) ([]health.Fallback, error) {
			return []health.Fallback{
				{Component: "cache", Active: false, Depth: 0, Since: &back},
				{Component: "ratelimit", Active: false, Depth: 0, Since: &back},
				{Component: "outbox", Active: true, Depth: 120, Since: &heldFrom},
			}, nil
		},
		Config: func(context.Context) (health.ConfigInfo, error) {
			reloaded := start.Add(40 * time.Minute)
			return health.ConfigInfo{Generation: 2, LoadedAt: reloaded, LastReload: &health.ReloadInfo{
				At: reloaded, Outcome: "applied", Keys: []string{"ratelimit.tasks.email:send"}}}, nil
		},
	}
	h := health.NewHandler(health.Options{Registry: reg, Source: src, Version: "v0.1.0",
		Ready:  func() (bool, string) { return true, "" },
		Logger: slog.New(slog.DiscardHandler)})
	rep := h.Report(context.Background())

	rep.StartedAt, rep.CheckedAt = start, checked
	rep.UptimeSeconds, rep.DurationMS = checked.Sub(start).Seconds(), 1.9
	rep.Connection.SinceSeconds = checked.Sub(back).Seconds()
	for i := range rep.Checks {
		rep.Checks[i].DurationMS = []float64{0.04, 0.01}[i]
	}
	for i := range rep.Sources {
		rep.Sources[i].DurationMS = []float64{0.01, 0.01, 0.02, 0.48, 0.31, 1.62, 0.01, 0.74, 0.01}[i]
	}
	return rep
}

func TestDocsExampleReport(t *testing.T) {
	t.Parallel()
	want, err := json.MarshalIndent(exampleReport(t), "", "  ")
	require.NoError(t, err)
	want = append(want, '\n')
	require.NotContains(t, string(want), secret)

	doc, err := os.ReadFile(docsPath)
	require.NoError(t, err)
	m := exampleBlock.FindSubmatchIndex(doc)
	require.NotNil(t, m, "docs/health.md has no <!-- example-report --> json block")
	if *update {
		doc = append(append(append([]byte{}, doc[:m[4]]...), want...), doc[m[5]:]...)
		require.NoError(t, os.WriteFile(docsPath, doc, 0o644))
		return
	}
	got := doc[m[4]:m[5]]
	require.Equal(t, string(want), string(got), "docs/health.md is out of date: go test ./healthcheck -run TestDocs -update")

	dec := json.NewDecoder(bytes.NewReader(got))
	dec.DisallowUnknownFields()
	var rep health.Report
	require.NoError(t, dec.Decode(&rep), "the example parses into Report")
}

// TestDocsDescribeEveryField keeps the schema tables in step with the structs.
func TestDocsDescribeEveryField(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(docsPath)
	require.NoError(t, err)
	for _, name := range jsonFields(reflect.TypeFor[health.Report](), map[reflect.Type]bool{}) {
		require.Contains(t, string(doc), "| `"+name+"`", "docs/health.md does not describe %q", name)
	}
}

func jsonFields(typ reflect.Type, seen map[reflect.Type]bool) []string {
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct || typ == reflect.TypeFor[time.Time]() || seen[typ] {
		return nil
	}
	seen[typ] = true
	var out []string
	for f := range typ.Fields() {
		if f.Anonymous {
			out = append(out, jsonFields(f.Type, seen)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out = append(out, name)
		out = append(out, jsonFields(f.Type, seen)...)
	}
	return out
}
