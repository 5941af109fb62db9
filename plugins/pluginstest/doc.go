// Package pluginstest is a plugins.Host for testing plugins without Redis or
// a worker, as net/http/httptest is for handlers.
//
// Create a Host with the plugin's config section, provision the plugin on it
// and run its handlers with a payload; inspect what it registered:
//
//	h := pluginstest.NewHost(t, pluginstest.Options{
//		ID:     "webhook",
//		Config: map[string]any{"timeout": "2s"},
//	})
//	require.NoError(t, h.Provision(ctx, &webhook.Webhook{}))
//	err := h.Run(ctx, "webhook:deliver", []byte(`{"url":"https://example.com"}`))
//
// The Host behaves like the runtime's where a plugin can tell:
//   - DecodeConfig is plugins.DecodeConfig, strict, with the same hooks;
//   - Provision runs Provision, then Validate, and Cleanup after a failure
//     (or at the end of the test after a success);
//   - handlers are served through an asynq.ServeMux, and a task type that
//     is registered twice makes Provision fail;
//   - Schedule checks the cron spec and the options as the runtime's
//     scheduler does, and records the entry instead of running it;
//   - the logger carries component=plugin and plugin=<id>; its output is kept
//     for Logs, and printed when the test fails;
//   - Cache is an in-memory cache.Store unless Options.Cache gives one;
//   - Limiter parses the rate as the runtime does and counts in memory;
//   - Enqueue records the task instead of sending it;
//   - Redis is a client of a Redis that is down (every call fails) unless
//     Options.Redis gives one.
//
// Run calls the handler directly, without the runtime's middleware: a panic
// is not recovered, and asynq.GetTaskID and friends find nothing in ctx.
package pluginstest
