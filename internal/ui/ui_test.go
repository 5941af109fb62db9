package ui_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/ui"
)

func TestServesApp(t *testing.T) {
	t.Parallel()
	f := setup(t, ui.Options{ReadOnly: true})

	for _, path := range []string{"/ui/", "/ui", "/ui/queues/default"} { // the last is a client-side route
		res, body := f.do(t, http.MethodGet, path)
		require.Equal(t, http.StatusOK, res.StatusCode, path)
		require.Contains(t, res.Header.Get("Content-Type"), "text/html", path)
		require.Contains(t, body, `window.FLAG_ROOT_PATH="\/ui"`, path)
		require.Contains(t, body, `window.FLAG_READ_ONLY="true"`, path)
		require.Contains(t, body, `window.FLAG_PROMETHEUS_SERVER_ADDRESS=""`, "no Metrics page without a Prometheus server")
		require.Equal(t, "DENY", res.Header.Get("X-Frame-Options"))
	}

	// The scripts the page loads are served under /ui with a script type.
	_, body := f.do(t, http.MethodGet, "/ui/")
	src := regexp.MustCompile(`src="(/ui/static/js/main\.[0-9a-f]+\.chunk\.js)"`).FindStringSubmatch(body)
	require.Len(t, src, 2, "main script in %s", body)
	res, js := f.do(t, http.MethodGet, src[1])
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, res.Header.Get("Content-Type"), "application/javascript")
	require.Greater(t, len(js), 10_000)
}

// TestQueuesCountsOnSharedClient enqueues and processes tasks on the one
// client the dashboard also uses, reads the counts through the dashboard,
// then checks the client and the asynq server on it still work.
func TestQueuesCountsOnSharedClient(t *testing.T) {
	t.Parallel()
	f := setup(t, ui.Options{ReadOnly: true})
	f.enqueue(t, "ui-waiting", "email:send", 5) // no server takes this queue
	done := f.worker(t, "ui-work")
	f.enqueue(t, "ui-work", "report:build", 3)
	require.Eventually(t, func() bool { return done.Load() == 3 }, 10*time.Second, 20*time.Millisecond)

	// asynq bumps the processed counter right after the handler returns.
	var qs map[string]queueRow
	require.Eventually(t, func() bool { qs = f.queues(t); return qs["ui-work"].Processed == 3 }, 5*time.Second, 20*time.Millisecond,
		"ui-work: %+v", qs["ui-work"])
	require.Equal(t, queueRow{Queue: "ui-waiting", Pending: 5}, qs["ui-waiting"])
	require.Equal(t, 0, qs["ui-work"].Pending)
	require.Equal(t, 3, qs["ui-work"].Succeeded)

	// Exercise every read page once more, then the shared client must still
	// serve: a ping, and the worker on it processes new tasks.
	for _, p := range []string{"/ui/api/queues/ui-waiting/pending_tasks", "/ui/api/servers", "/ui/api/redis_info", "/ui/api/queue_stats"} {
		res, body := f.do(t, http.MethodGet, p)
		require.Equal(t, http.StatusOK, res.StatusCode, "%s: %s", p, body)
	}
	require.NoError(t, f.rdb.Ping(t.Context()).Err())
	f.enqueue(t, "ui-work", "report:build", 2)
	require.Eventually(t, func() bool { return done.Load() == 5 }, 10*time.Second, 20*time.Millisecond,
		"the asynq server on the shared client stopped processing after UI requests")
	require.Eventually(t, func() bool { return f.queues(t)["ui-work"].Processed == 5 }, 5*time.Second, 20*time.Millisecond)
}

// mutations are asynqmon API calls that change tasks or queues; {pending}
// stands for a pending task's ID, {archived} for an archived one's.
var mutations = []struct{ method, path string }{
	{http.MethodDelete, "/ui/api/queues/ui-q/pending_tasks/{pending}"},
	{http.MethodPost, "/ui/api/queues/ui-q/pending_tasks/{pending}:archive"},
	{http.MethodDelete, "/ui/api/queues/ui-q/pending_tasks:delete_all"},
	{http.MethodPost, "/ui/api/queues/ui-q/pending_tasks:archive_all"},
	{http.MethodPost, "/ui/api/queues/ui-q/archived_tasks/{archived}:run"},
	{http.MethodPost, "/ui/api/queues/ui-q/archived_tasks:run_all"},
	{http.MethodDelete, "/ui/api/queues/ui-q/archived_tasks/{archived}"},
	{http.MethodPost, "/ui/api/queues/ui-q:pause"},
	{http.MethodDelete, "/ui/api/queues/ui-q"},
	{http.MethodPut, "/ui/api/queues/ui-q"},
	{http.MethodPatch, "/ui/api/queues/ui-q/pending_tasks/{pending}"},
	{http.MethodPost, "/ui/"}, // not the API: still no write of any kind
}

// seed enqueues two tasks in ui-q and archives one of them.
func seed(t *testing.T, f *fixture) (pending, archived string) {
	t.Helper()
	ids := f.enqueue(t, "ui-q", "email:send", 2)
	require.NoError(t, f.inspector().ArchiveTask("ui-q", ids[1]))
	return ids[0], ids[1]
}

func expand(path, pending, archived string) string {
	return regexp.MustCompile(`\{(pending|archived)\}`).ReplaceAllStringFunc(path, func(s string) string {
		if s == "{pending}" {
			return pending
		}
		return archived
	})
}

func TestReadOnlyRefusesMutations(t *testing.T) {
	t.Parallel()
	f := setup(t, ui.Options{ReadOnly: true})
	pending, archived := seed(t, f)

	for _, m := range mutations {
		res, body := f.do(t, m.method, expand(m.path, pending, archived))
		require.Equal(t, http.StatusForbidden, res.StatusCode, "%s %s: %s", m.method, m.path, body)
		require.Contains(t, body, "read-only")
	}
	in := f.inspector()
	p, err := in.GetTaskInfo("ui-q", pending)
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStatePending, p.State)
	a, err := in.GetTaskInfo("ui-q", archived)
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStateArchived, a.State)
	q := f.queues(t)["ui-q"]
	require.Equal(t, queueRow{Queue: "ui-q", Pending: 1, Archived: 1}, q)

	// Reads still work.
	res, _ := f.do(t, http.MethodGet, "/ui/api/queues/ui-q/pending_tasks")
	require.Equal(t, http.StatusOK, res.StatusCode)
}

// TestReadWriteAllowsMutations shows that the refusals above come from
// read-only mode: with it off, the same calls act.
func TestReadWriteAllowsMutations(t *testing.T) {
	t.Parallel()
	f := setup(t, ui.Options{ReadOnly: false})
	pending, archived := seed(t, f)

	res, body := f.do(t, http.MethodPost, "/ui/api/queues/ui-q/archived_tasks/"+archived+":run")
	require.Equal(t, http.StatusNoContent, res.StatusCode, body)
	res, body = f.do(t, http.MethodDelete, "/ui/api/queues/ui-q/pending_tasks/"+pending)
	require.Equal(t, http.StatusNoContent, res.StatusCode, body)

	_, err := f.inspector().GetTaskInfo("ui-q", pending)
	require.ErrorIs(t, err, asynq.ErrTaskNotFound)
	require.Equal(t, queueRow{Queue: "ui-q", Pending: 1}, f.queues(t)["ui-q"], "the archived task runs again: pending")

	// A cross-site form post is refused even then (CSRF: browsers resend
	// basic auth credentials by themselves).
	res, _ = f.do(t, http.MethodPost, "/ui/api/queues/ui-q:pause", "Sec-Fetch-Site", "cross-site")
	require.Equal(t, http.StatusForbidden, res.StatusCode)
	res, _ = f.do(t, http.MethodPost, "/ui/api/queues/ui-q:pause", "Origin", "http://evil.example")
	require.Equal(t, http.StatusForbidden, res.StatusCode)
	require.False(t, f.queues(t)["ui-q"].Paused)
}

func TestAuthRequiredOffLoopback(t *testing.T) {
	t.Parallel()
	f := setup(t, ui.Options{ReadOnly: true, RequireAuth: true,
		Auth: ui.Auth{Username: "ops", Password: "s3cret-pw", Token: "tok-123"}})
	f.enqueue(t, "ui-q", "email:send", 2)

	basic := func(u, p string) []string {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.SetBasicAuth(u, p)
		return []string{"Authorization", r.Header.Get("Authorization")}
	}
	for _, path := range []string{"/ui/", "/ui", "/ui/api/queues", "/ui/static/js/nothing.js"} {
		for name, h := range map[string][]string{
			"none":               nil,
			"wrong password":     basic("ops", "s3cret-pX"),
			"wrong user":         basic("opz", "s3cret-pw"),
			"empty basic":        basic("", ""),
			"wrong bearer":       {"Authorization", "Bearer tok-124"},
			"bearer prefix":      {"Authorization", "Bearer tok-12"},
			"password as bearer": {"Authorization", "Bearer s3cret-pw"},
		} {
			res, body := f.do(t, http.MethodGet, path, h...)
			require.Equal(t, http.StatusUnauthorized, res.StatusCode, "%s with %s", path, name)
			require.Contains(t, res.Header.Values("WWW-Authenticate"), `Basic realm="taskhost dashboard", charset="UTF-8"`)
			require.Contains(t, res.Header.Values("WWW-Authenticate"), `Bearer realm="taskhost dashboard"`)
			require.NotContains(t, body, "FLAG_ROOT_PATH")
		}
		for name, h := range map[string][]string{
			"basic":           basic("ops", "s3cret-pw"),
			"bearer":          {"Authorization", "Bearer tok-123"},
			"bearer any case": {"Authorization", "bearer tok-123"},
			"token as basic":  basic("anyone", "tok-123"),
		} {
			res, body := f.do(t, http.MethodGet, path, h...)
			require.Equal(t, http.StatusOK, res.StatusCode, "%s with %s: %s", path, name, body)
		}
	}
	require.Equal(t, 2, f.queues(t, basic("ops", "s3cret-pw")...)["ui-q"].Pending)
	// Authentication comes before read-only: an anonymous mutation learns nothing.
	res, _ := f.do(t, http.MethodDelete, "/ui/api/queues/ui-q")
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
}

func TestTokenOnlyAndBasicOnly(t *testing.T) {
	t.Parallel()
	tok := setup(t, ui.Options{RequireAuth: true, Auth: ui.Auth{Token: "only-token"}})
	res, _ := tok.do(t, http.MethodGet, "/ui/", "Authorization", "Bearer only-token")
	require.Equal(t, http.StatusOK, res.StatusCode)
	res, _ = tok.do(t, http.MethodGet, "/ui/")
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)

	bas := setup(t, ui.Options{RequireAuth: true, Auth: ui.Auth{Username: "u", Password: "p"}})
	res, _ = bas.do(t, http.MethodGet, "/ui/")
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	require.Equal(t, []string{`Basic realm="taskhost dashboard", charset="UTF-8"`}, res.Header.Values("WWW-Authenticate"),
		"no Bearer challenge without a token")
	// Without a token configured, no bearer value is accepted, empty included.
	res, _ = bas.do(t, http.MethodGet, "/ui/", "Authorization", "Bearer ")
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
}

func TestLoopback(t *testing.T) {
	t.Parallel()
	// Open: no auth configured on a loopback listener.
	open := setup(t, ui.Options{ReadOnly: true})
	for host, want := range map[string]int{
		"":                       http.StatusOK, // the test server's own 127.0.0.1:port
		"localhost:8080":         http.StatusOK,
		"[::1]:8080":             http.StatusOK,
		"127.0.0.2":              http.StatusOK,
		"evil.example:8080":      http.StatusForbidden, // DNS rebinding
		"127.0.0.1.evil.example": http.StatusForbidden,
		"10.0.0.5:8080":          http.StatusForbidden,
	} {
		req, err := http.NewRequest(http.MethodGet, open.srv.URL+"/ui/api/queues", nil)
		require.NoError(t, err)
		if host != "" {
			req.Host = host
		}
		res, err := open.srv.Client().Do(req)
		require.NoError(t, err)
		_ = res.Body.Close()
		require.Equal(t, want, res.StatusCode, "Host %q", host)
	}

	// Loopback with auth configured: applied.
	locked := setup(t, ui.Options{Auth: ui.Auth{Token: "t"}})
	res, _ := locked.do(t, http.MethodGet, "/ui/")
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	res, _ = locked.do(t, http.MethodGet, "/ui/", "Authorization", "Bearer t")
	require.Equal(t, http.StatusOK, res.StatusCode)
}

func TestNotReady(t *testing.T) {
	t.Parallel()
	f := setup(t, ui.Options{ReadOnly: true, Ready: func() bool { return false }})
	res, body := f.do(t, http.MethodGet, "/ui/api/queues")
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	require.Contains(t, body, "redis is not ready")
	res, _ = f.do(t, http.MethodGet, "/ui/")
	require.Equal(t, http.StatusOK, res.StatusCode, "the page itself loads without Redis")
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialed
	t.Cleanup(func() { _ = rdb.Close() })
	for name, tt := range map[string]struct {
		opts ui.Options
		want error
	}{
		"no client":       {ui.Options{}, ui.ErrNoClient},
		"public, no auth": {ui.Options{Client: rdb, RequireAuth: true}, ui.ErrNoAuth},
		"username only":   {ui.Options{Client: rdb, Auth: ui.Auth{Username: "u"}}, ui.ErrHalfBasic},
		"password only":   {ui.Options{Client: rdb, RequireAuth: true, Auth: ui.Auth{Password: "p", Token: "t"}}, ui.ErrHalfBasic},
	} {
		_, err := ui.New(tt.opts)
		require.ErrorIs(t, err, tt.want, name)
	}
	_, err := ui.New(ui.Options{Client: rdb, PrometheusAddress: "localhost:9090"})
	require.ErrorContains(t, err, "http://")
}

func TestAuthRedacted(t *testing.T) {
	t.Parallel()
	a := ui.Auth{Username: "ops", Password: "hunter2-pw", Token: "tok-abcdef"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "auth", a)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "auth", a)
	js, err := json.Marshal(struct{ Auth ui.Auth }{a})
	require.NoError(t, err)
	out := fmt.Sprintf("%v %+v %#v %s %+v", a, a, a, a, ui.Options{Auth: a}) + buf.String() + string(js)
	require.NotContains(t, out, "hunter2-pw")
	require.NotContains(t, out, "tok-abcdef")
	require.Contains(t, out, "ops")
	require.Contains(t, out, "***")
	require.Equal(t, "{Username:ops Password: Token:}", ui.Auth{Username: "ops"}.String(), "an unset secret stays visibly unset")
}

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:8080": true, "LOCALHOST:1": true, "[::1]:8080": true, "127.1.2.3:80": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "10.0.0.1:8080": false, "example.com:80": false,
		"127.0.0.1": false, "": false,
	} {
		require.Equal(t, want, ui.IsLoopback(addr), addr)
	}
}
