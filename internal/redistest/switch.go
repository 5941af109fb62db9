package redistest

import "sync/atomic"

// Switch stands in for the runtime's connection monitor in tests of the
// cache and the limiter: pass its Watch as their Options.Watch, then Set
// whether Redis is ready.
type Switch struct {
	setReady func(bool)
	stopped  atomic.Bool
}

// Watch is a cache.Options.Watch and a ratelimit.Options.Watch.
func (s *Switch) Watch(setReady func(ready bool)) (stop func()) {
	s.setReady = setReady
	return func() { s.stopped.Store(true) }
}

// Set tells the watcher whether Redis is ready.
func (s *Switch) Set(ready bool) { s.setReady(ready) }

// Stopped reports whether the watcher called the stop func (on Close).
func (s *Switch) Stopped() bool { return s.stopped.Load() }
