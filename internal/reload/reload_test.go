package reload_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/reload"
)

type section struct {
	Level string        `koanf:"level"`
	Wait  time.Duration `koanf:"wait"`
	List  []string      `koanf:"list"`
}

type cfg struct {
	Log     section                   `koanf:"log"`
	Rates   map[string]string         `koanf:"rates"`
	When    time.Time                 `koanf:"when"`
	Plugins map[string]map[string]any `koanf:"plugins"`
	skipped int
}

func TestDiffNamesEachChangedKey(t *testing.T) {
	t.Parallel()
	old := cfg{
		Log:     section{Level: "info", Wait: time.Second, List: []string{"a"}},
		Rates:   map[string]string{"api": "10-S", "gone": "1-S"},
		Plugins: map[string]map[string]any{"web": {"rate": "5-S", "hosts": []any{"a"}}, "old": {}},
	}
	cur := cfg{
		Log:     section{Level: "debug", Wait: time.Second, List: []string{"a", "b"}},
		Rates:   map[string]string{"api": "5-S", "new": "2-S"},
		When:    time.Unix(1, 0),
		Plugins: map[string]map[string]any{"web": {"rate": "5-S", "hosts": []any{"a"}, "timeout": "1s"}, "add": nil},
		skipped: 3,
	}
	require.Equal(t, []reload.Change{
		{Key: "log.level", Kind: reload.Changed},
		{Key: "log.list", Kind: reload.Changed},
		{Key: "plugins.add", Kind: reload.Added},
		{Key: "plugins.old", Kind: reload.Removed},
		{Key: "plugins.web.timeout", Kind: reload.Added},
		{Key: "rates.api", Kind: reload.Changed},
		{Key: "rates.gone", Kind: reload.Removed},
		{Key: "rates.new", Kind: reload.Added},
		{Key: "when", Kind: reload.Changed},
	}, reload.Diff(old, cur))
	require.Empty(t, reload.Diff(old, old))
	require.Empty(t, reload.Diff(cfg{Rates: map[string]string{}}, cfg{}), "an empty map and a nil one are the same")
}

func TestUnder(t *testing.T) {
	t.Parallel()
	require.True(t, reload.Under("ratelimit.tasks.a.b", "ratelimit.tasks"))
	require.True(t, reload.Under("log", "log"))
	require.False(t, reload.Under("logs.x", "log"))
}

func TestHandlerGuards(t *testing.T) {
	t.Parallel()
	calls := 0
	h := reload.Handler(func(context.Context) (int, any) {
		calls++
		return http.StatusConflict, map[string]string{"outcome": "refused"}
	})
	do := func(method, remote, origin string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, reload.Path, nil)
		req.RemoteAddr = remote
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	require.Equal(t, http.StatusMethodNotAllowed, do(http.MethodGet, "127.0.0.1:1", "").Code)
	require.Equal(t, http.StatusForbidden, do(http.MethodPost, "10.0.0.7:5000", "").Code)
	require.Equal(t, http.StatusForbidden, do(http.MethodPost, "127.0.0.1:1", "http://evil.test").Code)
	require.Zero(t, calls)
	for _, remote := range []string{"127.0.0.1:1", "[::1]:1", "[::ffff:127.0.0.1]:1"} {
		w := do(http.MethodPost, remote, "")
		require.Equal(t, http.StatusConflict, w.Code, remote)
		require.JSONEq(t, `{"outcome":"refused"}`, w.Body.String())
	}
	require.Equal(t, 3, calls)
}
