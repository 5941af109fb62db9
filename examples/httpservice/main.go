package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/taskhost/taskhost"
	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/plugins"
	"github.com/taskhost/taskhost/ratelimit"
)

// greeter is this program's plugin. Enabled under Config.Plugins, its
// handlers run on the runtime's queue server, in this process.
type greeter struct{ cache cache.Store }

type greetArgs struct {
	Name string `json:"name"`
}

func (*greeter) PluginInfo() plugins.Info {
	return plugins.Info{ID: "greeter", New: func() plugins.Plugin { return &greeter{} }}
}

func (g *greeter) Provision(_ context.Context, h plugins.Host) error {
	g.cache = h.Cache() // the shared cache, in the "greeter" namespace
	plugins.Handle(h, "greet", func(ctx context.Context, a greetArgs) error {
		h.Logger().Info("greeting", "name", a.Name)
		return g.cache.Set(ctx, a.Name, []byte("hello, "+a.Name), time.Hour)
	})
	return nil
}

func init() { plugins.Register(&greeter{}) }

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rt, err := taskhost.New(taskhost.Config{
		Redis:   taskhost.RedisConfig{URL: os.Getenv("REDIS_URL")},
		Health:  taskhost.HealthConfig{Addr: os.Getenv("HEALTH_ADDR")},
		Plugins: map[string]map[string]any{"greeter": nil},
	}, taskhost.Options{})
	if err != nil {
		return err
	}
	if err := rt.Start(ctx); err != nil {
		return err
	}

	rate := envOr("GREET_RATE", "10-S")
	limit, err := rt.Limits().HTTPMiddleware("greet", rate, ratelimit.HTTPOptions{})
	if err != nil {
		return err
	}
	client := rt.Client()
	defer client.Close()
	greetings := rt.Cache().Namespace("greeter")

	mux := http.NewServeMux()
	mux.Handle("POST /greet", limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		task, err := plugins.NewTask("greet", greetArgs{Name: r.URL.Query().Get("name")})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		res, err := client.Submit(r.Context(), task)
		switch {
		case errors.Is(err, taskhost.ErrOutboxFull):
			http.Error(w, "busy, try again later", http.StatusServiceUnavailable)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		writeJSON(w, map[string]any{"id": res.Info.ID, "held": res.Held})
	})))
	mux.HandleFunc("GET /greeting", func(w http.ResponseWriter, r *http.Request) {
		v, err := greetings.Get(r.Context(), r.URL.Query().Get("name"))
		switch {
		case errors.Is(err, cache.ErrNotFound):
			http.NotFound(w, r)
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		default:
			fmt.Fprintln(w, string(v))
		}
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		d, err := rt.Diagnostics(r.Context())
		out := map[string]any{"state": d.State.String(), "cache": rt.Cache().Backend(), "ratelimit": rt.Limits().Backend()}
		if err == nil {
			out["redis_version"], out["dbsize"], out["used_memory"] = d.Version, d.DBSize, d.UsedMemory
		}
		writeJSON(w, out)
	})

	ln, err := net.Listen("tcp", envOr("ADDR", "127.0.0.1:8081"))
	if err != nil {
		_ = rt.Stop(context.Background())
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Println("listening on", ln.Addr())

	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	if err := rt.Stop(shutdown); err != nil {
		return err
	}
	fmt.Println("stopped")
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
