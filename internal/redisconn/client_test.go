package redisconn_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redisconn"
	"github.com/taskhost/taskhost/internal/redistest"
)

func TestDescribe(t *testing.T) {
	t.Parallel()
	base := redisconn.DefaultConfig()
	with := func(fn func(*redisconn.Config)) redisconn.Config { c := base; fn(&c); return c }
	tests := []struct {
		name string
		cfg  redisconn.Config
		want string
	}{
		{"host", with(func(c *redisconn.Config) { c.Password = "pw1" }), "standalone 127.0.0.1:6379 db=0"},
		{"url with password", with(func(c *redisconn.Config) { c.URL = "redis://user:pw1@redis.example:6380/2?dial_timeout=3" }),
			"standalone redis://user:***@redis.example:6380/2"},
		{"url without user", with(func(c *redisconn.Config) { c.URL = "rediss://:pw1@redis.example/0" }),
			"standalone rediss://:***@redis.example/0 tls"},
		{"bad url", with(func(c *redisconn.Config) { c.URL = "redis://:pw1@host:port:bad" }), "standalone <unparseable url>"},
		{"tls insecure", with(func(c *redisconn.Config) { c.TLS.Enabled, c.TLS.InsecureSkipVerify = true, true }),
			"standalone 127.0.0.1:6379 db=0 tls insecure-skip-verify"},
		{"sentinel", with(func(c *redisconn.Config) {
			c.Mode, c.MasterName, c.SentinelAddrs, c.SentinelPassword = "sentinel", "mymaster", []string{"a:26379", "b:26379"}, "pw1"
		}), "sentinel master=mymaster sentinels=a:26379,b:26379 db=0"},
		{"cluster", with(func(c *redisconn.Config) { c.Mode, c.Addrs = "cluster", []string{"a:7000", "b:7001"} }),
			"cluster addrs=a:7000,b:7001"},
		{"embedded", with(func(c *redisconn.Config) { c.Mode = "embedded" }), "embedded 127.0.0.1:6380"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := redisconn.Describe(tt.cfg)
			require.Equal(t, tt.want, got)
			require.NotContains(t, got, "pw1")
		})
	}
}

func TestNewClientConfigErrors(t *testing.T) {
	t.Parallel()
	base := redisconn.DefaultConfig()
	with := func(fn func(*redisconn.Config)) redisconn.Config { c := base; fn(&c); return c }
	tests := []struct {
		name string
		cfg  redisconn.Config
		is   error
		msg  string
	}{
		{"unknown mode", with(func(c *redisconn.Config) { c.Mode = "ring" }), redisconn.ErrUnknownMode, `"ring"`},
		{"sentinel without master", with(func(c *redisconn.Config) { c.Mode, c.SentinelAddrs = "sentinel", []string{"a:1"} }),
			redisconn.ErrIncompleteConfig, "master_name"},
		{"cluster without addrs", with(func(c *redisconn.Config) { c.Mode = "cluster" }), redisconn.ErrIncompleteConfig, "redis.addrs"},
		{"standalone without host", with(func(c *redisconn.Config) { c.Host = "" }), redisconn.ErrIncompleteConfig, "redis.host"},
		{"bad url keeps password out", with(func(c *redisconn.Config) { c.URL = "redis://:pw1@host:notaport/0" }), nil, "redis.url"},
		{"bad scheme", with(func(c *redisconn.Config) { c.URL = "http://:pw1@host/0" }), redisconn.ErrIncompleteConfig, "redis.url"},
		{"missing ca file", with(func(c *redisconn.Config) { c.TLS.Enabled, c.TLS.CAFile = true, "/nonexistent/ca.pem" }), os.ErrNotExist, "ca_file"},
		{"cert without key", with(func(c *redisconn.Config) { c.TLS.Enabled, c.TLS.CertFile = true, "/x/cert.pem" }),
			redisconn.ErrIncompleteConfig, "key_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := redisconn.NewClient(tt.cfg)
			require.Error(t, err)
			require.Nil(t, c)
			if tt.is != nil {
				require.ErrorIs(t, err, tt.is)
			}
			require.Contains(t, err.Error(), tt.msg)
			require.NotContains(t, err.Error(), "pw1")
		})
	}
}

// TestNewClientOptions: the timeouts reach go-redis, zero values take
// taskhost's defaults rather than go-redis' (5 s, 5 dial attempts).
func TestNewClientOptions(t *testing.T) {
	t.Parallel()
	cfg := redisconn.DefaultConfig()
	cfg.DialTimeout, cfg.ReadTimeout, cfg.WriteTimeout, cfg.PoolTimeout, cfg.DialerRetries = 0, 0, 0, 0, 0
	c := newClient(t, cfg)
	o := c.(*redis.Client).Options()
	require.Equal(t, 500*time.Millisecond, o.DialTimeout)
	require.Equal(t, 500*time.Millisecond, o.ReadTimeout)
	require.Equal(t, 500*time.Millisecond, o.WriteTimeout)
	require.Equal(t, redisconn.DefaultConfig().PoolTimeout, o.PoolTimeout)
	require.True(t, o.ContextTimeoutEnabled)
	require.Equal(t, 1, o.DialerRetries, "0 must not become go-redis' 5")
	require.Equal(t, 0, o.MaxRetries, "-1 in the config disables retries")
	require.Equal(t, 20, o.PoolSize)
	require.Equal(t, -1, o.PipelinePoolSize)
	require.NotNil(t, o.Dialer)
	require.Equal(t, "127.0.0.1:6379", o.Addr)
}

// TestNewClientForms: URL with password and db, host/port/password/db, and
// embedded mode all reach the server.
func TestNewClientForms(t *testing.T) {
	t.Parallel()
	const password = "pw-forms"
	s := redistest.Start(t, redistest.Options{Password: password})
	ctx := context.Background()

	byURL := cfgFor(t, s.Addr())
	byURL.URL = strings.Replace(s.URL(), "/0", "/3", 1)
	byHost := cfgFor(t, s.Addr())
	byHost.Password, byHost.DB = password, 3
	// REDIS_PASSWORD fills in a URL that has none (issue 15).
	byURLAndPassword := cfgFor(t, s.Addr())
	byURLAndPassword.URL, byURLAndPassword.Password = "redis://"+s.Addr()+"/3", password
	embedded := redisconn.DefaultConfig()
	embedded.Mode, embedded.Embedded.Addr, embedded.Password, embedded.DB = redisconn.ModeEmbedded, s.Addr(), password, 3

	forms := map[string]redisconn.Config{"url": byURL, "host": byHost, "embedded": embedded, "url+password": byURLAndPassword}
	for name, cfg := range forms {
		c := newClient(t, cfg)
		require.NoError(t, c.Set(ctx, "form:"+name, name, 0).Err(), name)
	}
	db3 := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: password, DB: 3})
	defer db3.Close()
	require.Equal(t, int64(4), db3.Exists(ctx, "form:url", "form:host", "form:embedded", "form:url+password").Val(), "all four used db 3")
}

// TestSentinelAndClusterFailFast: with nothing listening, calls through the
// sentinel and cluster clients fail within the call bound too.
func TestSentinelAndClusterFailFast(t *testing.T) {
	t.Parallel()
	sentinel := redisconn.DefaultConfig()
	sentinel.Mode, sentinel.MasterName = redisconn.ModeSentinel, "mymaster"
	sentinel.SentinelAddrs = []string{redistest.ClosedAddr(t), redistest.ClosedAddr(t)}
	cluster := redisconn.DefaultConfig()
	cluster.Mode, cluster.Addrs = redisconn.ModeCluster, []string{redistest.ClosedAddr(t), redistest.ClosedAddr(t)}
	for name, cfg := range map[string]redisconn.Config{"sentinel": sentinel, "cluster": cluster} {
		c := newClient(t, cfg)
		start := time.Now()
		require.Error(t, c.Get(context.Background(), "k").Err(), name)
		require.Less(t, time.Since(start), callBound, name)
	}
}

// TestNewClientTLS runs redis-server with TLS: the CA file, a client
// certificate (required by the server), an unknown CA and
// insecure_skip_verify (which is warned about).
func TestNewClientTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	tlsPort, err := redistest.FreePort()
	require.NoError(t, err)
	s := redistest.Start(t, redistest.Options{Args: []string{
		"--tls-port", strconv.Itoa(tlsPort),
		"--tls-cert-file", pki.serverCert, "--tls-key-file", pki.serverKey,
		"--tls-ca-cert-file", pki.caCert, "--tls-auth-clients", "yes",
	}})
	_ = s
	ctx := context.Background()
	base := redisconn.DefaultConfig()
	base.URL = "rediss://127.0.0.1:" + strconv.Itoa(tlsPort) + "/0"

	ping := func(cfg redisconn.Config, opts ...redisconn.Option) error {
		c, err := redisconn.NewClient(cfg, opts...)
		require.NoError(t, err)
		defer c.Close()
		return c.Ping(ctx).Err()
	}

	base.TLS.CertFile, base.TLS.KeyFile = pki.clientCert, pki.clientKey
	withCert := base
	withCert.TLS.CAFile = pki.caCert
	require.NoError(t, ping(withCert), "server verified with the CA file, client certificate accepted")

	noCert := withCert
	noCert.TLS.CertFile, noCert.TLS.KeyFile = "", ""
	require.Error(t, ping(noCert), "the server requires a client certificate")

	byHost := cfgFor(t, "127.0.0.1:"+strconv.Itoa(tlsPort))
	byHost.TLS = withCert.TLS
	byHost.TLS.Enabled, byHost.TLS.ServerName = true, "127.0.0.1"
	require.NoError(t, ping(byHost), "tls.enabled with host/port")

	err = ping(base)
	require.Error(t, err, "the system roots do not know the test CA")
	require.Contains(t, err.Error(), "certificate")

	insecure := base
	insecure.TLS.InsecureSkipVerify = true
	require.True(t, redisconn.InsecureTLS(insecure))
	var logs bytes.Buffer
	require.NoError(t, ping(insecure, redisconn.WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))))
	require.Contains(t, logs.String(), "level=WARN")
	require.Contains(t, logs.String(), "insecure_skip_verify")
	require.Contains(t, logs.String(), "component=redis")

	s.Pause() // TCP connects; the TLS handshake gets no answer
	defer s.Resume()
	start := time.Now()
	require.Error(t, ping(withCert))
	require.Less(t, time.Since(start), callBound, "the TLS handshake is bounded by the dial timeout")
}
