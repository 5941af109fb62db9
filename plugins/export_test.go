package plugins

import "testing"

// EmptyRegistry empties the registry for the test and restores it after.
func EmptyRegistry(t *testing.T) {
	t.Helper()
	mu.Lock()
	saved := registry
	registry = map[string]Info{}
	mu.Unlock()
	t.Cleanup(func() {
		mu.Lock()
		registry = saved
		mu.Unlock()
	})
}
