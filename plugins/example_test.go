package plugins_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/taskhost/taskhost/plugins"
)

// muxHost serves handlers from an asynq.ServeMux, as the worker does. Only
// HandleFunc is implemented; tests use pluginstest.Host instead.
type muxHost struct {
	plugins.Host
	mux *asynq.ServeMux
}

func (h muxHost) HandleFunc(taskType string, fn asynq.HandlerFunc) { h.mux.HandleFunc(taskType, fn) }

func ExampleHandle() {
	h := muxHost{mux: asynq.NewServeMux()}

	type welcome struct {
		To string `json:"to"`
	}
	plugins.Handle(h, "mail:welcome", func(ctx context.Context, w welcome) error {
		fmt.Println("welcome", w.To)
		return nil
	})

	ctx := context.Background()
	_ = h.mux.ProcessTask(ctx, asynq.NewTask("mail:welcome", []byte(`{"to":"ada@example.com"}`)))
	err := h.mux.ProcessTask(ctx, asynq.NewTask("mail:welcome", []byte(`{"to":"ada@example.com","cc":"bob"}`)))
	fmt.Println(err)
	fmt.Println("archived:", errors.Is(err, asynq.SkipRetry))
	// Output:
	// welcome ada@example.com
	// malformed payload for mail:welcome: json: unknown field "cc": skip retry for the task
	// archived: true
}
