package outbox

import "time"

// entry is one held task in memory.
type entry struct {
	seq  uint64
	id   string
	data []byte // encoded spec, as stored
	at   time.Time
}

// queue is a FIFO of entries: pushed at the back, popped at the front.
type queue struct {
	items []*entry
	head  int
}

func (q *queue) len() int { return len(q.items) - q.head }

func (q *queue) push(e *entry) { q.items = append(q.items, e) }

func (q *queue) front() *entry { return q.items[q.head] }

// peek returns up to n entries from the front, in order, in a new slice.
func (q *queue) peek(n int) []*entry {
	n = min(n, q.len())
	return append([]*entry(nil), q.items[q.head:q.head+n]...)
}

// pop removes the front entry.
func (q *queue) pop() {
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head >= 1024 && q.head*2 >= len(q.items) {
		q.items = append([]*entry(nil), q.items[q.head:]...)
		q.head = 0
	}
}
