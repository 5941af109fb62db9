package ui_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
	"github.com/taskhost/taskhost/internal/ui"
)

// fixture is a dashboard served by httptest on one shared Redis client.
type fixture struct {
	rdb *redis.Client
	srv *httptest.Server
}

// setup starts a redis-server, a shared client on it and the dashboard with
// opts (opts.Client is filled in), mounted at /ui/ of a ServeMux as the
// runtime mounts it.
func setup(t *testing.T, opts ui.Options) *fixture {
	t.Helper()
	s := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	opts.Client = rdb
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h, err := ui.New(opts)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle(ui.Path+"/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fixture{rdb: rdb, srv: srv}
}

// do sends a request to the dashboard; header holds extra headers.
func (f *fixture) do(t *testing.T, method, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := f.srv.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, string(body)
}

// queueRow is the part of asynqmon's /api/queues answer the tests read.
type queueRow struct {
	Queue     string `json:"queue"`
	Pending   int    `json:"pending"`
	Archived  int    `json:"archived"`
	Processed int    `json:"processed"`
	Succeeded int    `json:"succeeded"`
	Paused    bool   `json:"paused"`
}

// queues reads /ui/api/queues, keyed by queue name.
func (f *fixture) queues(t *testing.T, header ...string) map[string]queueRow {
	t.Helper()
	res, body := f.do(t, http.MethodGet, "/ui/api/queues", header...)
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	var out struct {
		Queues []queueRow `json:"queues"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &out), body)
	m := map[string]queueRow{}
	for _, q := range out.Queues {
		m[q.Queue] = q
	}
	return m
}

// enqueue puts n tasks of type typ in queue q through the shared client and
// returns their IDs.
func (f *fixture) enqueue(t *testing.T, q, typ string, n int, opts ...asynq.Option) []string {
	t.Helper()
	c := asynq.NewClientFromRedisClient(f.rdb) // shared: Close would not close rdb; not called
	var ids []string
	for range n {
		info, err := c.Enqueue(asynq.NewTask(typ, []byte(`{"n":1}`)), append([]asynq.Option{asynq.Queue(q)}, opts...)...)
		require.NoError(t, err)
		ids = append(ids, info.ID)
	}
	return ids
}

// worker runs an asynq server on the shared client for queue q and counts
// the tasks it handles. It shuts down in t.Cleanup.
func (f *fixture) worker(t *testing.T, q string) *atomic.Int64 {
	t.Helper()
	var done atomic.Int64
	srv := asynq.NewServerFromRedisClient(f.rdb, asynq.Config{
		Concurrency:              2,
		Queues:                   map[string]int{q: 1},
		ShutdownTimeout:          2 * time.Second,
		DelayedTaskCheckInterval: time.Second,
		LogLevel:                 asynq.FatalLevel,
	})
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		done.Add(1)
		return nil
	})))
	t.Cleanup(srv.Shutdown)
	return &done
}

// inspector reads task states on the shared client, bypassing the UI.
func (f *fixture) inspector() *asynq.Inspector { return asynq.NewInspectorFromRedisClient(f.rdb) }
