package pluginstest

import "context"

// Reload runs the plugin's plugins.Reloader with section as its new
// plugins.<id>, as a config reload of the runtime would: the Host it gets
// decodes section and refuses HandleFunc, Schedule and AddCheck. It fails
// when the plugin was not provisioned on h or does not implement
// plugins.Reloader.
func (h *Host) Reload(ctx context.Context, section map[string]any) error {
	return h.set.Reload(ctx, h.opts.ID, section)
}
