package taskhostcmd_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost"
	taskhostcmd "github.com/taskhost/taskhost/cmd"
)

func healthCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := taskhostcmd.Run(context.Background(), append([]string{"health"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// listener answers every request with code and body, as a worker (with the
// worker header) or as some other process.
func listener(t *testing.T, worker bool, code int, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if worker {
			w.Header().Set(taskhost.WorkerHeader, "test")
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func healthAddrConfig(t *testing.T, addr string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte("health:\n  addr: "+addr+"\n"), 0o600))
	return p
}

// TestHealthReadsTheConfig: `worker health -config` probes the health.addr
// of that config, -health-addr overrides it, and a listener that is not a
// taskhost worker's does not pass for one.
func TestHealthReadsTheConfig(t *testing.T) {
	t.Parallel()
	worker := listener(t, true, 200, "ready\n")
	notReady := listener(t, true, 503, "not ready: redis is down\n")
	other := listener(t, false, 200, "ok\n")

	code, out, errOut := healthCLI(t, "-config", healthAddrConfig(t, worker))
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "200 ready (http://"+worker+"/readyz)\n", out)

	code, out, _ = healthCLI(t, "-config", healthAddrConfig(t, notReady))
	require.Equal(t, 1, code)
	require.Equal(t, "503 not ready: redis is down (http://"+notReady+"/readyz)\n", out)

	code, _, errOut = healthCLI(t, "-config", healthAddrConfig(t, other))
	require.Equal(t, 1, code, "another process on the address is not this worker")
	require.Contains(t, errOut, "answered 200 but is not a taskhost worker's health listener")

	code, out, errOut = healthCLI(t, "-config", healthAddrConfig(t, other), "-health-addr", worker)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, worker, "the flag over the file")

	// A wildcard listen address is probed on loopback.
	_, port, _ := strings.Cut(worker, ":")
	code, out, errOut = healthCLI(t, "-config", healthAddrConfig(t, "0.0.0.0:"+port))
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "http://127.0.0.1:"+port+"/readyz")

	// An explicit URL is probed as given.
	code, out, errOut = healthCLI(t, other)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "200 ok (http://"+other+"/readyz)\n", out)
}

func TestHealthUsageErrors(t *testing.T) {
	t.Parallel()
	code, _, errOut := healthCLI(t, "-config", filepath.Join(t.TempDir(), "absent.yaml"))
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "absent.yaml")

	code, _, errOut = healthCLI(t, "-config", healthAddrConfig(t, "nowhere"))
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "health.addr")

	code, _, _ = healthCLI(t, "a", "b")
	require.Equal(t, 2, code)
	code, _, _ = healthCLI(t, "-h")
	require.Equal(t, 0, code)
}
