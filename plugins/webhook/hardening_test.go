package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/plugins"
)

// TestHeaderValuesAsNetHTTP: a header value with a control character used
// to fail in net/http on every one of 25 retries; it is archived at once
// as malformed, with the reason. Tab is allowed, as net/http allows it.
func TestHeaderValuesAsNetHTTP(t *testing.T) {
	t.Parallel()
	_, h := setup(t, map[string]any{"allow_hosts": loopback})
	for _, v := range []string{"a\u0001b", "a\u007fb", "a\u0000b", "a\nb", "a\rb", "a\u001bb"} {
		b, err := json.Marshal(map[string]any{"url": "http://127.0.0.1:1/", "headers": map[string]string{"X-A": v}})
		require.NoError(t, err)
		payload := string(b)
		err = h.Run(t.Context(), TaskType, b)
		require.ErrorIs(t, err, asynq.SkipRetry, payload)
		require.ErrorIs(t, err, plugins.ErrMalformedPayload, payload)
		require.ErrorContains(t, err, "header X-A has a control character", payload)
	}
	require.NoError(t, (&Delivery{URL: "http://127.0.0.1/", Headers: map[string]string{"X-A": "a\tb c\u00e9"}}).Validate())
}

// TestNumericHostFormsArchived: hosts that C resolvers read as IPv4 but Go
// resolves as names (so DNS, "no such host", 25 retries) are archived at
// once, without a lookup.
func TestNumericHostFormsArchived(t *testing.T) {
	t.Parallel()
	_, h := setup(t, nil)
	for _, host := range []string{"127.1", "0x7f000001", "2130706433", "0177.0.0.1", "127.0.0.0x1", "1.2.3.04294967295"} {
		payload := fmt.Sprintf(`{"url":"http://%s/"}`, host)
		err := h.Run(t.Context(), TaskType, []byte(payload))
		require.ErrorIs(t, err, asynq.SkipRetry, host)
		require.ErrorIs(t, err, plugins.ErrMalformedPayload, host)
		require.ErrorContains(t, err, "is a numeric form", host)
	}
	for _, host := range []string{"127.0.0.1", "[::1]", "example.com", "a-1.example.co.uk", "localhost", "x.0x7f.example"} {
		require.NoError(t, (&Delivery{URL: "http://" + host + "/"}).Validate(), host)
	}
	require.ErrorContains(t, (&Delivery{URL: "http://exa mple.com/"}).Validate(), "url")
}

// TestNoSuchHostIsPermanent: a name that does not exist (NXDOMAIN) is
// archived once; a resolver that failed for now is retried. (No DNS in
// tests: the errors are built as the resolver returns them.)
func TestNoSuchHostIsPermanent(t *testing.T) {
	t.Parallel()
	nx := &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "nope.invalid", IsNotFound: true}}
	require.True(t, isPermanent(fmt.Errorf("Post: %w", nx)))
	tmp := &net.DNSError{Err: "server misbehaving", Name: "x.example", IsTemporary: true}
	require.False(t, isPermanent(tmp))
	require.False(t, isPermanent(errors.New("connection refused")))
}
