package plugins_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/plugins"
	"github.com/taskhost/taskhost/plugins/pluginstest"
)

type greet struct {
	Name  string `json:"name"`
	Times int    `json:"times"`
}

func (g greet) Validate() error {
	if g.Name == "" {
		return errors.New("name is empty")
	}
	return nil
}

// setup registers a greet handler on a test host and returns the host and a
// pointer to the arguments of the last call (nil until called).
func setup(t *testing.T) (*pluginstest.Host, *[]greet) {
	t.Helper()
	h := pluginstest.NewHost(t, pluginstest.Options{ID: "greeter"})
	var calls []greet
	plugins.Handle(h, "greet:say", func(ctx context.Context, g greet) error {
		calls = append(calls, g)
		return nil
	})
	return h, &calls
}

func TestHandleDecodesPayload(t *testing.T) {
	t.Parallel()
	h, calls := setup(t)
	require.NoError(t, h.Run(t.Context(), "greet:say", []byte(` {"name":"ada","times":2} `)))
	require.Equal(t, []greet{{Name: "ada", Times: 2}}, *calls)
}

func TestHandleArchivesMalformedPayload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		payload string
		reason  string
	}{
		{"unknown field", `{"name":"ada","x":1}`, `json: unknown field "x"`},
		{"wrong type", `{"name":"ada","times":"2"}`, `json: cannot unmarshal string into Go struct field greet.times of type int`},
		{"trailing data", `{"name":"ada"} {"name":"bob"}`, `json: unexpected data after the payload`},
		{"trailing garbage", `{"name":"ada"}x`, `json: unexpected data after the payload`},
		{"not JSON", `name=ada`, `invalid character 'a' in literal null (expecting 'u')`},
		{"truncated", `{"name":"ada"`, `unexpected EOF`},
		{"empty", ``, `empty payload`},
		{"Validate fails", `{"times":1}`, `invalid: name is empty`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, calls := setup(t)
			err := h.Run(t.Context(), "greet:say", []byte(tt.payload))

			require.ErrorIs(t, err, asynq.SkipRetry, "asynq must archive it at once")
			require.ErrorIs(t, err, plugins.ErrMalformedPayload)
			var mp *plugins.MalformedPayloadError
			require.ErrorAs(t, err, &mp)
			require.Equal(t, "greet:say", mp.TaskType)
			require.Equal(t, tt.reason, mp.Err.Error())
			require.Equal(t, fmt.Sprintf("malformed payload for greet:say: %s: %s", tt.reason, asynq.SkipRetry), err.Error())
			require.Empty(t, *calls, "the handler must not run")

			// The next task is served as usual.
			require.NoError(t, h.Run(t.Context(), "greet:say", []byte(`{"name":"ada"}`)))
			require.Len(t, *calls, 1)
		})
	}
}

func TestHandlePassesHandlerErrorThrough(t *testing.T) {
	t.Parallel()
	h := pluginstest.NewHost(t, pluginstest.Options{})
	boom := errors.New("boom")
	plugins.Handle(h, "t", func(ctx context.Context, _ struct{}) error { return boom })
	err := h.Run(t.Context(), "t", []byte(`{}`))
	require.ErrorIs(t, err, boom)
	require.NotErrorIs(t, err, asynq.SkipRetry)
	require.NotErrorIs(t, err, plugins.ErrMalformedPayload)
}

type ptrValidated struct {
	N int `json:"n"`
}

func (p *ptrValidated) Validate() error {
	if p.N < 0 {
		return errors.New("n is negative")
	}
	return nil
}

func TestDecodePayloadCallsPointerValidate(t *testing.T) {
	t.Parallel()
	_, err := plugins.DecodePayload[ptrValidated]([]byte(`{"n":-1}`))
	require.EqualError(t, err, "invalid: n is negative")
	got, err := plugins.DecodePayload[*ptrValidated]([]byte(`{"n":-2}`))
	require.EqualError(t, err, "invalid: n is negative")
	require.Equal(t, -2, got.N)
	v, err := plugins.DecodePayload[ptrValidated]([]byte(`{"n":3}`))
	require.NoError(t, err)
	require.Equal(t, 3, v.N)
}

func TestNewTaskRoundTrips(t *testing.T) {
	t.Parallel()
	task, err := plugins.NewTask("greet:say", greet{Name: "ada", Times: 3}, asynq.Queue("low"))
	require.NoError(t, err)
	require.Equal(t, "greet:say", task.Type())
	got, err := plugins.DecodePayload[greet](task.Payload())
	require.NoError(t, err)
	require.Equal(t, greet{Name: "ada", Times: 3}, got)

	_, err = plugins.NewTask("bad", make(chan int))
	require.ErrorContains(t, err, "plugins: encode bad payload")
}

func TestDecodePayloadRefusesNull(t *testing.T) {
	t.Parallel()
	type args struct{ N int }
	_, err := plugins.DecodePayload[*args]([]byte("null"))
	require.ErrorContains(t, err, "payload is null")
	_, err = plugins.DecodePayload[map[string]any]([]byte(" null "))
	require.ErrorContains(t, err, "payload is null")
	_, err = plugins.DecodePayload[args]([]byte("null"))
	require.ErrorContains(t, err, "payload is null")
}
