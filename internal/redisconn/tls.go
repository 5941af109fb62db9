package redisconn

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
)

// InsecureTLS reports whether cfg turns certificate verification off. The
// runtime logs a warning when it does; NewClient does too WithLogger.
func InsecureTLS(cfg Config) bool {
	return cfg.TLS.InsecureSkipVerify && tlsWanted(cfg)
}

func tlsWanted(cfg Config) bool {
	return cfg.TLS.Enabled || (cfg.Mode != ModeEmbedded && hasScheme(cfg.URL, "rediss"))
}

func hasScheme(u, scheme string) bool {
	return len(u) > len(scheme)+3 && u[:len(scheme)+3] == scheme+"://"
}

// tlsFor builds the TLS config from cfg.TLS, or returns nil when TLS is off.
// serverName is the host of a rediss:// URL, used when tls.server_name is empty.
func tlsFor(cfg Config, serverName string, logger *slog.Logger) (*tls.Config, error) {
	if !tlsWanted(cfg) {
		return nil, nil
	}
	tc, err := buildTLS(cfg.TLS, serverName)
	if err != nil {
		return nil, err
	}
	if tc.InsecureSkipVerify && logger != nil {
		logger.Warn("redis TLS certificate verification is off (redis.tls.insecure_skip_verify): the connection can be intercepted",
			"component", "redis", "target", Describe(cfg))
	}
	return tc, nil
}

func buildTLS(t TLS, serverName string) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         serverName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // opt-in, warned about
	}
	if t.ServerName != "" {
		tc.ServerName = t.ServerName
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redisconn: redis.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redisconn: redis.tls.ca_file %s: no PEM certificate found", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, fmt.Errorf("%w: redis.tls.cert_file and redis.tls.key_file must be set together", ErrIncompleteConfig)
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("redisconn: redis.tls.cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
