package health_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/health"
)

func TestNewServerLimits(t *testing.T) {
	t.Parallel()
	srv := health.NewServer("127.0.0.1:0", setup(t).handler())
	require.NotZero(t, srv.ReadHeaderTimeout)
	require.NotZero(t, srv.ReadTimeout)
	require.Greater(t, srv.WriteTimeout, health.DefaultTimeout)
	require.NotZero(t, srv.IdleTimeout)
	require.NotZero(t, srv.MaxHeaderBytes)

	ln, err := net.Listen("tcp", srv.Addr)
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	url := "http://" + ln.Addr().String()
	client := &http.Client{}
	defer client.CloseIdleConnections()

	resp, err := client.Get(url + "/livez")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	req, err := http.NewRequest(http.MethodGet, url+"/livez", nil)
	require.NoError(t, err)
	req.Header.Set("X-Big", strings.Repeat("a", 2*srv.MaxHeaderBytes))
	resp, err = client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)

	resp, err = client.Post(url+"/healthz", "text/plain", strings.NewReader(strings.Repeat("x", 64<<10)))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	require.NoError(t, srv.Shutdown(context.Background()))
	require.True(t, errors.Is(<-served, http.ErrServerClosed))
}
