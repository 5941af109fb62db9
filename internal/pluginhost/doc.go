// Package pluginhost is the one implementation of plugins.Host: it provisions,
// starts, stops and cleans up plugins, and checks what they register.
//
// The runtime serves it from its shared components; plugins/pluginstest
// serves it from test doubles, so the two cannot drift: both refuse an empty
// task type, a nil handler, a duplicate check and a bad cron spec alike.
package pluginhost
