package outbox

import (
	"context"
	"maps"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskhost/taskhost/internal/tracing"
)

// traceSend starts the enqueue span of a Submit and returns the task with
// the span's context in its headers, so that a held task keeps it through
// the outbox, and the handler's span is the enqueue's child after a replay.
func (c *Client) traceSend(ctx context.Context, task *asynq.Task, opts []asynq.Option, id string) (context.Context, *asynq.Task, trace.Span) {
	queue := QueueOf(task, opts)
	headers := make(map[string]string, len(task.Headers())+2)
	maps.Copy(headers, task.Headers())
	ctx, span := c.tracer.StartSend(ctx, tracing.SourceClient, task.Type(), queue, id, headers)
	return ctx, WithHeaders(task, headers), span
}

// WithHeaders returns a copy of task with headers in place of its own,
// keeping the options it was created with.
func WithHeaders(task *asynq.Task, headers map[string]string) *asynq.Task {
	return asynq.NewTaskWithHeaders(task.Type(), task.Payload(), headers, taskOptions(task)...)
}

// QueueOf returns the queue that task, enqueued with opts, goes to: the last
// Queue option of either, or asynq's default queue.
func QueueOf(task *asynq.Task, opts []asynq.Option) string {
	if q, ok := lastString(taskOptions(task), opts, asynq.QueueOpt); ok {
		return q
	}
	return defaultQueue
}
