package health

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// DefaultTimeout bounds a probe, and each check without a timeout of its own.
const DefaultTimeout = time.Second

// Registry holds named checks. It is safe for concurrent use.
type Registry struct {
	defaultTimeout time.Duration

	mu      sync.RWMutex
	entries map[string]*entry
}

type entry struct {
	check  Check
	flight flight[struct{}]
}

// NewRegistry returns an empty registry whose checks default to
// defaultTimeout; zero or less means DefaultTimeout.
func NewRegistry(defaultTimeout time.Duration) *Registry {
	if defaultTimeout <= 0 {
		defaultTimeout = DefaultTimeout
	}
	return &Registry{defaultTimeout: defaultTimeout, entries: map[string]*entry{}}
}

// Add registers c. It fails with ErrInvalidCheck for an empty name, a nil
// Run or a negative timeout, and with ErrDuplicateCheck for a taken name.
func (r *Registry) Add(c Check) error {
	switch {
	case c.Name == "":
		return fmt.Errorf("%w: empty name", ErrInvalidCheck)
	case c.Run == nil:
		return fmt.Errorf("%w: %q has no Run func", ErrInvalidCheck, c.Name)
	case c.Timeout < 0:
		return fmt.Errorf("%w: %q has a negative timeout", ErrInvalidCheck, c.Name)
	}
	if c.Timeout == 0 {
		c.Timeout = r.defaultTimeout
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.entries[c.Name]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicateCheck, c.Name)
	}
	r.entries[c.Name] = &entry{check: c}
	return nil
}

// Remove drops the check called name and reports whether it was there.
func (r *Registry) Remove(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.entries[name]
	delete(r.entries, name)
	return ok
}

// Checks returns the registered checks sorted by name, with their effective timeouts.
func (r *Registry) Checks() []Check {
	es := r.sorted()
	out := make([]Check, len(es))
	for i, e := range es {
		out[i] = e.check
	}
	return out
}

func (r *Registry) sorted() []*entry {
	r.mu.RLock()
	es := make([]*entry, 0, len(r.entries))
	for _, e := range r.entries {
		es = append(es, e)
	}
	r.mu.RUnlock()
	sort.Slice(es, func(i, j int) bool { return es[i].check.Name < es[j].check.Name })
	return es
}

// Run runs every check concurrently and returns their results sorted by name.
// It returns by ctx's deadline or the longest check timeout, whichever is
// first: a check still running then is reported as CheckTimeout and left to
// finish in the background. A check that is still running from an earlier
// call is joined, not started again. Error messages are passed through Redact.
func (r *Registry) Run(ctx context.Context) []CheckResult {
	es := r.sorted()
	out := make([]CheckResult, len(es))
	var wg sync.WaitGroup
	for i, e := range es {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := e.flight.do(ctx, e.check.Timeout, func(ctx context.Context) (struct{}, error) {
				return struct{}{}, e.check.Run(ctx)
			})
			res := CheckResult{Name: e.check.Name, Status: o.status(), DurationMS: ms(o.dur), Critical: e.check.Critical}
			if o.err != nil {
				res.Error = Redact(o.err.Error())
			}
			out[i] = res
		}()
	}
	wg.Wait()
	return out
}
