package redisconn

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

type transition struct{ from, to State }

// subscriber delivers transitions to fn in order, one at a time, on a
// goroutine that exists only while there is something to deliver.
type subscriber struct {
	fn      func(from, to State)
	mu      sync.Mutex
	queue   []transition
	running bool
	stopped bool
}

// enqueue is called with the monitor's mu held, so transitions are queued in
// the order they happen.
func (s *subscriber) enqueue(wg *sync.WaitGroup, from, to State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.queue = append(s.queue, transition{from, to})
	if !s.running {
		s.running = true
		wg.Add(1)
		go s.drain(wg)
	}
}

func (s *subscriber) drain(wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		s.mu.Lock()
		if len(s.queue) == 0 || s.stopped {
			s.queue, s.running = nil, false
			s.mu.Unlock()
			return
		}
		t := s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()
		s.fn(t.from, t.to)
	}
}

func (s *subscriber) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
}

// Subscribe calls fn(from, to) for every later transition, in order, outside
// the monitor's locks and never concurrently for one subscriber. fn should be
// quick; it delays only its own later calls. To learn the current state
// without a race, Subscribe first and then call State: a change in between is
// still delivered. The returned func unsubscribes; it may be called from fn.
func (m *Monitor) Subscribe(fn func(from, to State)) (unsubscribe func()) {
	return m.subscribe(fn, false)
}

// subscribe registers fn; with prime, fn first gets (current, current).
func (m *Monitor) subscribe(fn func(from, to State), prime bool) func() {
	m.mu.Lock()
	cur := m.State()
	if cur == Closed {
		m.mu.Unlock()
		if prime {
			fn(Closed, Closed)
		}
		return func() {}
	}
	s := &subscriber{fn: fn}
	m.nextSub++
	id := m.nextSub
	m.subs[id] = s
	if prime {
		s.enqueue(&m.deliveries, cur, cur)
	}
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		delete(m.subs, id)
		m.mu.Unlock()
		s.stop()
	}
}

// Watch returns a channel that holds the latest state: it starts with the
// current one, keeps only the newest if the reader falls behind, and is closed
// after Closed. cancel stops the watch and closes the channel.
func (m *Monitor) Watch() (states <-chan State, cancel func()) {
	w := &watcher{ch: make(chan State, 1)}
	unsub := m.subscribe(w.deliver, true)
	return w.ch, func() {
		unsub()
		w.close()
	}
}

type watcher struct {
	mu     sync.Mutex
	ch     chan State
	closed bool
}

func (w *watcher) deliver(_, to State) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	select {
	case <-w.ch:
	default:
	}
	w.ch <- to
	if to == Closed {
		w.closed = true
		close(w.ch)
	}
}

func (w *watcher) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.ch)
	}
}

// Wait blocks until the state is want (or one of also), the monitor closes
// (ErrClosed), or ctx ends. It is meant for tests and start-up code.
func (m *Monitor) Wait(ctx context.Context, want State, also ...State) error {
	targets := append([]State{want}, also...)
	hit := make(chan State, 1)
	unsub := m.Subscribe(func(_, to State) {
		if slices.Contains(targets, to) || to == Closed {
			select {
			case hit <- to:
			default:
			}
		}
	})
	defer unsub()
	check := func(s State) (bool, error) {
		switch {
		case slices.Contains(targets, s):
			return true, nil
		case s == Closed:
			return true, ErrClosed
		}
		return false, nil
	}
	if ok, err := check(m.State()); ok {
		return err
	}
	select {
	case s := <-hit:
		_, err := check(s)
		return err
	case <-ctx.Done():
		return fmt.Errorf("redisconn: waiting for state %v, state is %s: %w", targets, m.State(), ctx.Err())
	}
}
