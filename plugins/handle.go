package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/hibiken/asynq"
)

// ErrMalformedPayload matches, with errors.Is, every error that Handle
// returns for a payload that does not decode or does not validate. Such a
// task is archived at once: the error also matches asynq.SkipRetry.
var ErrMalformedPayload = errors.New("malformed payload")

// MalformedPayloadError is the error Handle returns for a payload that does
// not decode into the handler's argument type, or whose Validate method
// fails. It matches both ErrMalformedPayload and asynq.SkipRetry, so asynq
// archives the task without retrying it, and metrics can count it as
// archived.
type MalformedPayloadError struct {
	TaskType string
	Err      error // the decode or validation error: the reason
}

func (e *MalformedPayloadError) Error() string {
	return fmt.Sprintf("%s for %s: %v: %v", ErrMalformedPayload, e.TaskType, e.Err, asynq.SkipRetry)
}

// Unwrap returns the reason, ErrMalformedPayload and asynq.SkipRetry.
func (e *MalformedPayloadError) Unwrap() []error {
	return []error{e.Err, ErrMalformedPayload, asynq.SkipRetry}
}

// Handle registers fn for taskType on h. Each task's JSON payload is decoded
// into a fresh T strictly: an unknown field, a wrong type, an empty payload
// or data after the JSON value is refused. When T (or *T) has a
// Validate() error method, it is called after decoding. A payload that fails
// either step is archived at once with a *MalformedPayloadError that carries
// the reason; fn is not called and the worker goes on with other tasks.
//
// Read the task ID and retry count with asynq.GetTaskID and
// asynq.GetRetryCount on ctx.
func Handle[T any](h Host, taskType string, fn func(ctx context.Context, args T) error) {
	h.HandleFunc(taskType, func(ctx context.Context, t *asynq.Task) error {
		args, err := DecodePayload[T](t.Payload())
		if err != nil {
			return &MalformedPayloadError{TaskType: taskType, Err: err}
		}
		return fn(ctx, args)
	})
}

// DecodePayload decodes payload into a T the way Handle does, strictly, and
// then calls T's Validate method when it has one.
func DecodePayload[T any](payload []byte) (T, error) {
	var args T
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 {
		return args, errors.New("empty payload")
	}
	if bytes.Equal(trimmed, []byte("null")) {
		return args, errors.New("payload is null")
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&args); err != nil {
		return args, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return args, errors.New("json: unexpected data after the payload")
	}
	var v any = &args
	if _, ok := v.(validator); !ok {
		v = args // T is itself a pointer or an interface
	}
	if val, ok := v.(validator); ok {
		if err := val.Validate(); err != nil {
			return args, fmt.Errorf("invalid: %w", err)
		}
	}
	return args, nil
}

type validator interface{ Validate() error }

// NewTask returns a task of taskType whose payload is args as JSON, the form
// that Handle decodes.
func NewTask[T any](taskType string, args T, opts ...asynq.Option) (*asynq.Task, error) {
	payload, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("plugins: encode %s payload: %w", taskType, err)
	}
	return asynq.NewTask(taskType, payload, opts...), nil
}
