package plugins

import (
	"fmt"
	"sort"
	"sync"
)

var (
	mu       sync.RWMutex
	registry = map[string]Info{}
)

// Register adds a plugin to the registry. Call it from init. It panics on an
// empty ID, a duplicate ID or a nil New, as these are programming errors.
func Register(p Plugin) {
	info := p.PluginInfo()
	if info.ID == "" {
		panic("plugins: Register with an empty ID")
	}
	if info.New == nil {
		panic(fmt.Sprintf("plugins: Register %q with a nil New", info.ID))
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[info.ID]; dup {
		panic(fmt.Sprintf("plugins: plugin %q registered twice", info.ID))
	}
	registry[info.ID] = info
}

// Lookup returns the registered plugin with id.
func Lookup(id string) (Info, bool) {
	mu.RLock()
	defer mu.RUnlock()
	info, ok := registry[id]
	return info, ok
}

// IDs returns the registered plugin IDs, sorted.
func IDs() []string {
	mu.RLock()
	defer mu.RUnlock()
	ids := make([]string, 0, len(registry))
	for id := range registry {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
