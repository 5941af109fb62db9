package health_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/taskhost/taskhost/internal/health"
)

func ExampleNewHandler() {
	reg := health.NewRegistry(0)
	_ = reg.Add(health.Check{Name: "billing.api", Run: func(context.Context) error {
		return errors.New("503 from billing")
	}})
	h := health.NewHandler(health.Options{
		Registry: reg,
		Ready:    func() (bool, string) { return false, "redis is reconnecting" },
		Logger:   slog.New(slog.DiscardHandler),
	})
	for _, path := range []string{"/livez", "/readyz", "/nope"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		fmt.Print(path, " ", w.Code, " ", w.Body.String())
	}
	rep := h.Report(context.Background())
	fmt.Println(rep.Status, rep.Reasons)
	// Output:
	// /livez 200 ok
	// /readyz 503 not ready: redis is reconnecting
	// /nope 404 404 page not found
	// degraded [check "billing.api" failed not ready: redis is reconnecting]
}
