package outbox

// A Record is one held task in a Store: its sequence number, which orders
// the outbox, and its encoded form.
type Record struct {
	Seq  uint64
	Data []byte
}

// A Store persists the outbox. The Client keeps the held tasks in memory as
// well, so a Store is written on every hold and delete and read only by Load
// when the Client starts. It must be safe for concurrent use.
type Store interface {
	// Load calls fn for every stored record in ascending Seq order.
	Load(fn func(Record) error) error
	// Append stores recs and returns only once they survive a crash of
	// the process.
	Append(recs ...Record) error
	// Delete removes the records with the given sequence numbers; unknown
	// numbers are ignored.
	Delete(seqs ...uint64) error
	// Close releases the store. Later calls return an error.
	Close() error
}

// memoryStore is the default Store: it keeps nothing beyond the Client's own
// memory, so held tasks do not outlive the process.
type memoryStore struct{}

func (memoryStore) Load(func(Record) error) error { return nil }
func (memoryStore) Append(...Record) error        { return nil }
func (memoryStore) Delete(...uint64) error        { return nil }
func (memoryStore) Close() error                  { return nil }
