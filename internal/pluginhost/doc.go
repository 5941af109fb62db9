// Package pluginhost is the one implementation of plugins.Host: it provisions,
// starts, stops and cleans up plugins, and checks what they register.
//
// The runtime serves it from its shared components; plugins/pluginstest
// serves it from test doubles and an embedded Redis, so the two cannot drift.
package pluginhost
