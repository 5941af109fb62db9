package outbox

import (
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
)

// ErrPayloadTooLarge is matched, with errors.Is, by the error of a task
// whose payload is larger than the bound (worker.max_payload_bytes). Such a
// task is refused before anything is sent, and archived if it reaches a
// worker another way.
var ErrPayloadTooLarge = errors.New("payload too large")

// PayloadError is the error of a task whose payload exceeds the bound.
type PayloadError struct {
	Type string // the task type
	Size int    // the payload's size in bytes
	Max  int    // the bound
}

func (e *PayloadError) Error() string {
	return fmt.Sprintf("%s: task %s has a payload of %d bytes, more than worker.max_payload_bytes (%d)",
		ErrPayloadTooLarge, e.Type, e.Size, e.Max)
}

// Is matches ErrPayloadTooLarge.
func (e *PayloadError) Is(target error) bool { return target == ErrPayloadTooLarge }

// CheckPayload returns a *PayloadError when task's payload is larger than
// max bytes; a max of 0 or less means no bound.
func CheckPayload(task *asynq.Task, max int) error {
	if task == nil || max <= 0 || len(task.Payload()) <= max {
		return nil
	}
	return &PayloadError{Type: task.Type(), Size: len(task.Payload()), Max: max}
}
