package plugins

import "context"

// Reloader is implemented by plugins whose settings can change while the
// worker runs. When a config reload (SIGHUP, `worker reload`) changes
// plugins.<id>, the runtime calls Reload with a Host whose DecodeConfig
// decodes the new section; the rest of the Host is the plugin's own, except
// that HandleFunc, Schedule and AddCheck are refused (they fail the reload).
//
// Reload must check the new settings in full before it applies any of them,
// and swap them in so that tasks running meanwhile see either the old
// settings or the new: an error leaves the plugin as it was, and the whole
// reload is refused (plugins reloaded before it in the same reload are given
// their previous section back). A plugin that does not implement Reloader
// keeps its settings, and a change of its section is refused as needing a
// restart.
type Reloader interface {
	Reload(ctx context.Context, h Host) error
}
