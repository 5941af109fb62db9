package pluginstest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/plugins"
	"github.com/taskhost/taskhost/ratelimit"
)

// greeter is the plugin of docs/plugins.md's pluginstest section: a
// greet:send handler that uses the cache, a limiter, a named limiter, the
// enqueue client, the task logger, task annotations, task defaults and a
// metric.
type greeter struct {
	cache  cache.Store
	perTo  *ratelimit.Limiter
	global *ratelimit.Limiter
	host   plugins.Host
	sent   prometheus.Counter
}

func (*greeter) PluginInfo() plugins.Info {
	return plugins.Info{ID: "greeter", New: func() plugins.Plugin { return &greeter{} }}
}

type greeting struct {
	To string `json:"to"`
}

func (g *greeter) Provision(ctx context.Context, h plugins.Host) error {
	var err error
	g.host, g.cache = h, h.Cache()
	if g.perTo, err = h.LimiterN("to", 1, time.Minute); err != nil {
		return err
	}
	if g.global, err = h.NamedLimiter("outbound"); err != nil {
		return err
	}
	g.sent = prometheus.NewCounter(prometheus.CounterOpts{Name: "greeter_sent_total", Help: "Greetings sent."})
	if err := h.Metrics().Register(g.sent); err != nil {
		return err
	}
	h.TaskDefaults("greet:", asynq.Queue("greetings"), asynq.MaxRetry(3))
	plugins.Handle(h, "greet:send", g.send)
	plugins.Handle(h, "greet:audit", func(context.Context, greeting) error { return nil })
	return nil
}

func (g *greeter) send(ctx context.Context, m greeting) error {
	if res, err := g.perTo.Allow(ctx, m.To); err != nil {
		return err
	} else if res.Reached {
		return &ratelimit.LimitedError{RetryIn: res.RetryIn()}
	}
	if _, err := g.global.Allow(ctx, ""); err != nil {
		return err
	}
	if err := g.cache.Set(ctx, "last", []byte(m.To), time.Hour); err != nil {
		return fmt.Errorf("greeter: remember: %w", err)
	}
	audit, err := plugins.NewTask("greet:audit", m)
	if err != nil {
		return err
	}
	if _, err := g.host.Enqueue(ctx, audit); err != nil {
		return fmt.Errorf("greeter: audit: %w", err)
	}
	g.sent.Inc()
	g.host.TaskLogger(ctx).Info("greeted", "to", m.To)
	plugins.AnnotateTask(ctx, "to", m.To)
	return nil
}
