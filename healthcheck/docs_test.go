package healthcheck_test

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

	"github.com/taskhost/taskhost/healthcheck"
)

var update = flag.Bool("update", false, "rewrite the example report in docs/health.md")

const docsPath = "../docs/health.md"

var exampleBlock = regexp.MustCompile("(?s)(<!-- example-report -->\n```json\n)(.*?)(```)")

// exampleReport is a real report from the handler, with fake sources, and
// its clock-dependent fields fixed so the example is stable.
func exampleReport(t *testing.T) healthcheck.Report {
	t.Helper()
	f := &fake{state: "ready", ready: true, fallbackActive: true, cameBackEmpty: true, calls: map[string]int{}}
	reg := healthcheck.NewRegistry(0)
	require.NoError(t, reg.Add(healthcheck.Check{Name: "redis.ping", Critical: true, Run: ok}))
	require.NoError(t, reg.Add(healthcheck.Check{Name: "webhook.destinations", Run: func(context.Context) error {
		return errors.New("GET https://hooks.example.com/health: 502 Bad Gateway")
	}}))
	src := f.source()
	src.Connection = func(context.Context) (healthcheck.Connection, error) {
		return healthcheck.Connection{State: "ready", Since: stateSince, Mode: "standalone",
			Target: "redis://app:" + secret + "@10.0.0.5:6379/0", CameBackEmptyAt: &emptyAt}, nil
	}
	src.Queues = func(context.Context) ([]healthcheck.Queue, error) {
		return []healthcheck.Queue{
			{Name: "critical", Size: 0, ProcessedToday: 310, ProcessedTotal: 12040, FailedTotal: 3},
			{Name: "default", Size: 42, Pending: 37, Active: 4, Retry: 1, Completed: 120, LatencySeconds: 1.25,
				ProcessedToday: 1530, FailedToday: 12, ProcessedTotal: 98211, FailedTotal: 431},
		}, nil
	}
	src.Redis = func(context.Context) (healthcheck.RedisInfo, error) {
		return healthcheck.RedisInfo{Version: "7.2.4", UptimeSeconds: 864000, UsedMemoryBytes: 3_512_320,
			UsedMemoryPeakBytes: 4_915_200, MaxMemoryBytes: 268_435_456, MemFragmentationRatio: 1.31,
			ConnectedClients: 14, DBSize: 187}, nil
	}
	since := stateSince.Add(5 * time.Minute)
	src.Fallbacks = func(context.Context) ([]healthcheck.Fallback, error) {
		return []healthcheck.Fallback{
			{Component: "cache", Active: true, Depth: 1250, Since: &since},
			{Component: "ratelimit", Active: false, Depth: 0},
			{Component: "outbox", Active: false, Depth: 0},
		}, nil
	}
	h := healthcheck.NewHandler(healthcheck.Options{Registry: reg, Source: src, Version: "v0.1.0",
		Ready:  func() (bool, string) { return true, "" },
		Logger: slog.New(slog.DiscardHandler)})
	rep := h.Report(context.Background())

	start := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	rep.StartedAt, rep.CheckedAt = start, start.Add(time.Hour+2*time.Minute+30*time.Second)
	rep.UptimeSeconds, rep.DurationMS = 3750, 1.9
	rep.Connection.SinceSeconds = rep.CheckedAt.Sub(stateSince).Seconds()
	for i := range rep.Checks {
		rep.Checks[i].DurationMS = []float64{0.35, 212.5}[i]
	}
	for i := range rep.Sources {
		rep.Sources[i].DurationMS = []float64{0.01, 0.02, 0.31, 1.62, 0.01, 0.74}[i]
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
	var rep healthcheck.Report
	require.NoError(t, dec.Decode(&rep), "the example parses into Report")
}

// TestDocsDescribeEveryField keeps the schema tables in step with the structs.
func TestDocsDescribeEveryField(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(docsPath)
	require.NoError(t, err)
	for _, name := range jsonFields(reflect.TypeFor[healthcheck.Report](), map[reflect.Type]bool{}) {
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
