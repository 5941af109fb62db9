package plugins_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/plugins"
	"github.com/taskhost/taskhost/plugins/canary"
	"github.com/taskhost/taskhost/plugins/webhook"
)

// FuzzDecodePayload feeds arbitrary payloads to DecodePayload with the
// built-in plugins' argument types. It must never panic; a payload it
// accepts is valid JSON, passes the type's Validate, and survives a round
// trip through NewTask's encoding unchanged.
func FuzzDecodePayload(f *testing.F) {
	for _, seed := range []string{
		// Real webhook:deliver payloads, as webhook.NewTask writes them.
		`{"url":"https://example.com/hooks/signup","method":"POST","headers":{"Content-Type":"application/json","X-Request-Id":"42"},"body":"{\"event\":\"signup\",\"user\":7}"}`,
		`{"url":"http://127.0.0.1:8080/hook"}`,
		`{"url":"https://user:pass@example.com:8443/a?b=c#d","method":"PUT"}`,
		// The canary's tick.
		`{}`,
		// Refused ones.
		``, ` `, `null`, `[1,2,3]`, `"url"`, `{"url":"ftp://example.com/"}`, `{"url":"http:///nohost"}`,
		`{"url":"http://a/","extra":1}`, `{"url":"http://a/"} {"url":"http://b/"}`, `{"url":5}`,
		`{"url":"http://a/","method":"GE T"}`, `{"url":"http://a/","headers":{"Bad Name":"v"}}`,
		`{"url":"http://a/","headers":{"X":"a\r\nb"}}`, `{"URL":"http://a/"}`, "{\"url\":\"http://a/\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		_, _ = plugins.DecodePayload[map[string]any](payload)
		_, _ = plugins.DecodePayload[canary.Tick](payload)
		_, _ = plugins.DecodePayload[*webhook.Delivery](payload) // a pointer type must not panic on null

		d, err := plugins.DecodePayload[webhook.Delivery](payload)
		if err != nil {
			return
		}
		require.True(t, json.Valid(payload), "accepted a payload that is not JSON")
		require.NoError(t, d.Validate(), "accepted a payload that fails Validate")
		task, err := webhook.NewTask(d)
		require.NoError(t, err)
		again, err := plugins.DecodePayload[webhook.Delivery](task.Payload())
		require.NoError(t, err, "refused its own encoding %s", task.Payload())
		if len(d.Headers) == 0 {
			d.Headers = nil // omitempty drops an empty map
		}
		require.Equal(t, d, again)
	})
}
