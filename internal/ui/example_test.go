package ui_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/ui"
)

// The dashboard on a listener that is not loopback, behind a token. The
// client is the process's shared one; the dashboard never closes it.
func ExampleNew() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6390"}) // the app's client; not dialed here
	defer rdb.Close()

	h, err := ui.New(ui.Options{
		Client:      rdb,
		ReadOnly:    true,
		RequireAuth: !ui.IsLoopback("0.0.0.0:8080"),
		Auth:        ui.Auth{Token: "change-me"},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle(ui.Path+"/", h) // and /ui redirects to /ui/

	anonymous := httptest.NewRecorder()
	mux.ServeHTTP(anonymous, httptest.NewRequest("GET", "/ui/", nil))
	fmt.Println(anonymous.Code, anonymous.Header().Get("WWW-Authenticate"))

	req := httptest.NewRequest("GET", "/ui/", nil)
	req.Header.Set("Authorization", "Bearer change-me")
	signedIn := httptest.NewRecorder()
	mux.ServeHTTP(signedIn, req)
	fmt.Println(signedIn.Code, signedIn.Header().Get("Content-Type"))

	del := httptest.NewRequest("DELETE", "/ui/api/queues/default", nil)
	del.Header.Set("Authorization", "Bearer change-me")
	refused := httptest.NewRecorder()
	mux.ServeHTTP(refused, del)
	fmt.Println(refused.Code)
	// Output:
	// 401 Basic realm="taskhost dashboard", charset="UTF-8"
	// 200 text/html; charset=utf-8
	// 403
}
