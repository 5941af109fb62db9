package cache

import (
	"context"
	"math"
	"time"

	"github.com/maypok86/otter/v2"
)

// Memory is a bounded in-process cache with a TTL per entry, built on
// github.com/maypok86/otter/v2. Otter was chosen over
// hashicorp/golang-lru/v2/expirable because:
//   - it honours a TTL per entry (an ExpiryCalculator reads it from the
//     value), while expirable has one TTL for the whole cache;
//   - its reads take no lock and allocate nothing, while expirable takes a
//     mutex on every Get to update recency;
//   - its S3-FIFO eviction keeps hit rates up under scans.
//
// The bound counts entries over all namespaces. Values are copied on Set and
// Get, so callers may modify theirs. Close stops otter's clean-up goroutine.
type Memory struct {
	c *core
	m *memoryBackend
}

// NewMemory returns a memory store bounded by opts.MemoryMaxEntries.
func NewMemory(opts Options) *Memory {
	opts = opts.withDefaults()
	m := newMemoryBackend(opts.MemoryMaxEntries)
	return &Memory{c: newCore(m, opts), m: m}
}

// Namespace returns the store of namespace ns. It panics when ns is invalid
// (see ValidateNamespace).
func (m *Memory) Namespace(ns string) Store { return m.c.namespace(ns) }

// Stats returns the hit and miss counts.
func (m *Memory) Stats() Stats { return m.c.stats() }

// Len runs pending evictions and returns the number of entries, which is
// at most the bound; expired entries not yet removed may be counted.
func (m *Memory) Len() int { return m.m.len() }

// Close stops the background clean-up goroutine. Entries stay readable.
func (m *Memory) Close() { m.m.close() }

type memKey struct{ ns, key string }

type memEntry struct {
	value []byte
	ttl   time.Duration // 0: no expiry
}

type memoryBackend struct {
	c *otter.Cache[memKey, memEntry]
}

func newMemoryBackend(maxEntries int) *memoryBackend {
	c := otter.Must(&otter.Options[memKey, memEntry]{
		MaximumSize: maxEntries,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[memKey, memEntry]) time.Duration {
			if e.Value.ttl == 0 {
				return math.MaxInt64 // otter's "never"
			}
			return e.Value.ttl
		}),
	})
	return &memoryBackend{c: c}
}

func (m *memoryBackend) get(_ context.Context, ns, key string) ([]byte, error) {
	e, ok := m.c.GetIfPresent(memKey{ns, key})
	if !ok {
		return nil, ErrNotFound
	}
	return append(make([]byte, 0, len(e.value)), e.value...), nil
}

func (m *memoryBackend) set(_ context.Context, ns, key string, value []byte, ttl time.Duration) error {
	m.c.Set(memKey{ns, key}, memEntry{value: append(make([]byte, 0, len(value)), value...), ttl: ttl})
	return nil
}

func (m *memoryBackend) del(_ context.Context, ns, key string) error {
	m.c.Invalidate(memKey{ns, key})
	return nil
}

// clear drops every entry and returns how many there were.
func (m *memoryBackend) clear() int {
	n := m.c.EstimatedSize()
	m.c.InvalidateAll()
	return n
}

func (m *memoryBackend) len() int {
	m.c.CleanUp()
	return m.c.EstimatedSize()
}

func (m *memoryBackend) close() { m.c.StopAllGoroutines() }
