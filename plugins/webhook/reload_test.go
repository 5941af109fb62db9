package webhook

import (
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/plugins"
	"github.com/taskhost/taskhost/ratelimit"
)

// Every key of plugins.webhook reloads: rate (the counters carry on),
// signing_secret, timeout and allow_hosts, each from the next delivery; a
// bad section is refused, naming the key, and changes nothing.
func TestReloadAppliesEachKey(t *testing.T) {
	t.Parallel()
	const secret = "rotated-s3cret"
	srv := newServer(t, status(204))
	w, h := setup(t, map[string]any{"allow_hosts": loopback, "rate": "1-M"})
	ctx := t.Context()
	fixed := time.Unix(1_700_000_000, 0)
	w.now = func() time.Time { return fixed }

	require.NoError(t, deliver(t, h, Delivery{URL: srv.URL}))
	var le *ratelimit.LimitedError
	require.ErrorAs(t, deliver(t, h, Delivery{URL: srv.URL}), &le, "1-M: the second is limited")
	require.Empty(t, srv.requests()[0].Header.Get(HeaderSignature))
	client := w.cur.Load().client

	// rate and signing_secret: the same client and connections.
	require.NoError(t, h.Reload(ctx, map[string]any{"allow_hosts": loopback, "rate": "3-M", "signing_secret": secret}))
	require.Same(t, client, w.cur.Load().client)
	require.NoError(t, deliver(t, h, Delivery{URL: srv.URL, Body: "b"}), "3-M, two counted before the reload")
	require.ErrorAs(t, deliver(t, h, Delivery{URL: srv.URL}), &le, "the counters carry on")
	req := srv.requests()[1]
	require.NoError(t, Verify([]byte(secret), req.Header.Get(HeaderTimestamp), req.Header.Get(HeaderSignature), []byte(req.Body), time.Minute, fixed))

	// timeout: a new client.
	require.NoError(t, h.Reload(ctx, map[string]any{"allow_hosts": loopback, "timeout": "3s"}))
	require.NotSame(t, client, w.cur.Load().client)
	require.Equal(t, 3*time.Second, w.cur.Load().client.Timeout)
	require.NoError(t, deliver(t, h, Delivery{URL: srv.URL}), "no rate any more")
	require.Empty(t, srv.requests()[2].Header.Get(HeaderSignature), "no secret any more")

	// allow_hosts: loopback is refused from the next delivery.
	require.NoError(t, h.Reload(ctx, map[string]any{"allow_hosts": []any{"10.0.0.0/8"}, "timeout": "3s"}))
	err := deliver(t, h, Delivery{URL: srv.URL})
	require.ErrorIs(t, err, asynq.SkipRetry)
	require.ErrorContains(t, err, "not in plugins.webhook.allow_hosts")
	require.Len(t, srv.requests(), 3)

	// A bad section is refused, naming the key, and nothing changes.
	require.NoError(t, h.Reload(ctx, map[string]any{"allow_hosts": loopback, "signing_secret": secret}))
	before := w.cur.Load()
	for _, bad := range []struct {
		section map[string]any
		want    string
	}{
		{map[string]any{"timeout": "0s", "allow_hosts": []any{"10.0.0.0/8"}}, "plugins.webhook.timeout: 0s is not positive"},
		{map[string]any{"timeout": "ten"}, `plugins.webhook.timeout: "ten" is not a duration`},
		{map[string]any{"rate": "fast"}, `plugins.webhook.rate: limiter "host": "fast" is not a rate`},
		{map[string]any{"allow_hosts": []any{"http://x"}}, `plugins.webhook.allow_hosts: allow_hosts[0]: "http://x"`},
		{map[string]any{"timout": "1s"}, "plugins.webhook.timout: unknown key"},
		{map[string]any{"signing_secret": []any{secret}}, "plugins.webhook.signing_secret"},
	} {
		err := h.Reload(ctx, bad.section)
		require.ErrorIs(t, err, plugins.ErrInvalidConfig, bad.want)
		require.ErrorContains(t, err, bad.want)
		require.NotContains(t, err.Error(), secret)
		require.Same(t, before, w.cur.Load(), bad.want)
	}
	require.NoError(t, deliver(t, h, Delivery{URL: srv.URL}))
	require.NotEmpty(t, srv.requests()[3].Header.Get(HeaderSignature))
	require.NotContains(t, h.Logs(), secret)
}
