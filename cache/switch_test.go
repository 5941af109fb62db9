package cache_test

import "sync/atomic"

// readySwitch stands in for the runtime's connection monitor: it is a
// cache.Options.Watch that lets the test say when Redis is ready.
type readySwitch struct {
	setReady func(bool)
	stopped  atomic.Bool
}

func (s *readySwitch) watch(setReady func(bool)) func() {
	s.setReady = setReady
	return func() { s.stopped.Store(true) }
}

func (s *readySwitch) set(ready bool) { s.setReady(ready) }
