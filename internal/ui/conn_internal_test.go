package ui

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
)

// TestAsynqmonCloseWouldCloseSharedClient records why New never lets
// asynqmon's Close be called: it closes the client sharedConn hands over,
// which is the runtime's.
func TestAsynqmonCloseWouldCloseSharedClient(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	require.Same(t, rdb, sharedConn{client: rdb}.MakeRedisClient())

	mon := asynqmon.New(asynqmon.Options{RootPath: Path, RedisConnOpt: sharedConn{client: rdb}})
	rec := httptest.NewRecorder()
	mon.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/api/queues", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.NoError(t, rdb.Ping(t.Context()).Err(), "serving does not close the client")

	_ = mon.Close()
	require.ErrorIs(t, rdb.Ping(t.Context()).Err(), redis.ErrClosed)
}

// TestAsynqmonReadOnly records what asynqmon's own ReadOnly does under
// readOnlyGuard: it refuses the mutating routes with 405.
func TestAsynqmonReadOnly(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // refused before any command
	t.Cleanup(func() { _ = rdb.Close() })
	mon := asynqmon.New(asynqmon.Options{RootPath: Path, RedisConnOpt: sharedConn{client: rdb}, ReadOnly: true})
	for _, c := range []struct{ method, path string }{
		{http.MethodDelete, "/ui/api/queues/q/pending_tasks/id"},
		{http.MethodPost, "/ui/api/queues/q/pending_tasks/id:archive"},
		{http.MethodPost, "/ui/api/queues/q/archived_tasks/id:run"},
		{http.MethodPost, "/ui/api/queues/q/retry_tasks:run_all"},
		{http.MethodPost, "/ui/api/queues/q:pause"},
		{http.MethodDelete, "/ui/api/queues/q"},
		{http.MethodPost, "/ui/api/queues/q/active_tasks:cancel_all"},
	} {
		rec := httptest.NewRecorder()
		mon.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		require.Equal(t, http.StatusMethodNotAllowed, rec.Code, "%s %s: %s", c.method, c.path, rec.Body)
	}
}
