package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketTasks = []byte("tasks")
	// bucketQuarantine holds stored tasks that could not be read, by their
	// sequence number, as they were: kept for an operator, never delivered.
	bucketQuarantine = []byte("quarantine")
)

// maxCommitBatch bounds how many waiting writes one transaction takes.
const maxCommitBatch = 1024

// FileStore is a Store in a bbolt file. Every Append is durable (fsync)
// before it returns. Writes that arrive while a transaction commits are
// grouped into the next one, so concurrent enqueues share an fsync while a
// lone enqueue never waits for company.
type FileStore struct {
	db   *bolt.DB
	path string

	mu     sync.RWMutex // guards closed and sends on reqs
	closed bool
	reqs   chan *commitReq
	done   chan struct{}
}

type commitReq struct {
	put  []Record
	del  []uint64
	bad  []Record // to move to the quarantine bucket
	errc chan error
}

// FileOption changes how OpenFile opens the file.
type FileOption func(*fileOptions)

type fileOptions struct {
	logger *slog.Logger
	now    func() time.Time
}

// WithLogger makes OpenFile log a damaged file on l (component=outbox);
// the default is slog.Default().
func WithLogger(l *slog.Logger) FileOption { return func(o *fileOptions) { o.logger = l } }

// errLocked is OpenFile's error for a file another process holds.
var errLocked = errors.New("file is locked by another process")

// OpenFile opens or creates the outbox file at path. The file is locked for
// the process; a second opener fails after a second with an error that says
// so.
//
// No damage to the file can crash the process. Before bbolt maps it,
// OpenFile reads the file on its own (checkFile): the metas, the pages in
// use, and every page of the tree, as bbolt will. A damaged file (one that
// fails the check, that bbolt refuses, or on which bbolt panics or faults
// anyway) is renamed to <path>.corrupt-<UTC time> and reported in one ERROR
// line naming both paths; a fresh file takes its place, holding every task
// that could still be read from the damaged one.
func OpenFile(path string, opts ...FileOption) (*FileStore, error) {
	o := fileOptions{logger: slog.Default(), now: time.Now}
	for _, fn := range opts {
		fn(&o)
	}
	rep, err := checkFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	var db *bolt.DB
	if rep.problem == "" {
		db, err = openGuarded(path)
		switch {
		case errors.Is(err, errLocked):
			return nil, fmt.Errorf("outbox: open %s: %w", path, err)
		case err != nil:
			rep.problem = err.Error()
		}
	}
	if rep.problem != "" {
		return recoverFile(path, rep, o)
	}
	return newFileStore(db, path)
}

// boltOptions are the options the outbox opens bbolt with.
var boltOptions = bolt.Options{
	Timeout:        time.Second,
	NoFreelistSync: true,
	FreelistType:   bolt.FreelistMapType,
}

// openGuarded opens path with bbolt and reads every stored task once, with
// faults turned into panics and panics recovered: a second line of defence
// behind checkFile. A DB on which bbolt panicked is abandoned, not closed
// (its lock may be held by the panicking read).
func openGuarded(path string) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if v := recover(); v != nil {
			db, err = nil, fmt.Errorf("bbolt failed on the file: %v", v)
		}
	}()
	opts := boltOptions
	db, err = bolt.Open(path, 0o600, &opts)
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, errLocked
		}
		return nil, err
	}
	err = db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketTasks, bucketQuarantine} {
			if b := tx.Bucket(name); b != nil {
				if err := b.ForEach(func(k, v []byte) error { return nil }); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// newFileStore creates the buckets and starts the commit loop.
func newFileStore(db *bolt.DB, path string) (*FileStore, error) {
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketTasks, bucketQuarantine} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("outbox: init %s: %w", path, err)
	}
	s := &FileStore{db: db, path: path, reqs: make(chan *commitReq, maxCommitBatch), done: make(chan struct{})}
	go s.commitLoop()
	return s, nil
}

// recoverFile moves a damaged file aside, opens a fresh one at path and
// stores in it the tasks rep could read (those that do not decode go to its
// quarantine bucket).
func recoverFile(path string, rep fileReport, o fileOptions) (*FileStore, error) {
	moved := path + ".corrupt-" + o.now().UTC().Format("20060102T150405Z")
	for i := 2; ; i++ {
		if _, err := os.Lstat(moved); errors.Is(err, fs.ErrNotExist) {
			break
		}
		moved = fmt.Sprintf("%s.corrupt-%s-%d", path, o.now().UTC().Format("20060102T150405Z"), i)
	}
	if err := os.Rename(path, moved); err != nil {
		return nil, fmt.Errorf("outbox: %s is damaged (%s) and cannot be moved aside: %w", path, rep.problem, err)
	}
	opts := boltOptions
	db, err := bolt.Open(path, 0o600, &opts)
	if err != nil {
		return nil, fmt.Errorf("outbox: open a fresh %s after moving the damaged one to %s: %w", path, moved, err)
	}
	s, err := newFileStore(db, path)
	if err != nil {
		return nil, err
	}
	var good, bad []Record
	for _, r := range rep.records {
		if _, err := decode(r.Data); err != nil {
			bad = append(bad, r)
			continue
		}
		good = append(good, r)
	}
	if err := s.submit(&commitReq{put: good, bad: bad}); err != nil {
		_ = s.Close()
		return nil, err
	}
	attrs := []any{"component", "outbox", "path", path, "moved_to", moved, "problem", rep.problem,
		"recovered", len(good), "unreadable", len(bad)}
	if rep.scanned {
		attrs = append(attrs, "note", "recovered by reading every page: tasks already delivered may be replayed, "+
			"and are refused by task ID while Redis holds them")
	}
	o.logger.Error("outbox file is damaged: moved it aside and started a fresh outbox with the tasks that could be read", attrs...)
	return s, nil
}

// Path is the file's path.
func (s *FileStore) Path() string { return s.path }

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// Load implements Store.
func (s *FileStore) Load(fn func(Record) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTasks).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("outbox: %s: bad key %x", s.path, k)
			}
			return fn(Record{Seq: binary.BigEndian.Uint64(k), Data: append([]byte(nil), v...)})
		})
	})
}

// Append implements Store.
func (s *FileStore) Append(recs ...Record) error {
	return s.submit(&commitReq{put: recs})
}

// Delete implements Store.
func (s *FileStore) Delete(seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	return s.submit(&commitReq{del: seqs})
}

func (s *FileStore) submit(r *commitReq) error {
	r.errc = make(chan error, 1)
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	s.reqs <- r
	s.mu.RUnlock()
	return <-r.errc
}

// commitLoop writes waiting requests in one transaction each round.
func (s *FileStore) commitLoop() {
	defer close(s.done)
	batch := make([]*commitReq, 0, maxCommitBatch)
	for r := range s.reqs {
		batch = append(batch[:0], r)
	more:
		for len(batch) < maxCommitBatch {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		err := s.db.Update(func(tx *bolt.Tx) error {
			b, q := tx.Bucket(bucketTasks), tx.Bucket(bucketQuarantine)
			for _, r := range batch {
				for _, rec := range r.put {
					if err := b.Put(seqKey(rec.Seq), rec.Data); err != nil {
						return err
					}
				}
				for _, seq := range r.del {
					if err := b.Delete(seqKey(seq)); err != nil {
						return err
					}
				}
				for _, rec := range r.bad {
					if err := q.Put(seqKey(rec.Seq), rec.Data); err != nil {
						return err
					}
					if err := b.Delete(seqKey(rec.Seq)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			err = fmt.Errorf("outbox: write %s: %w", s.path, err)
		}
		for _, r := range batch {
			r.errc <- err
		}
	}
}

// Quarantine moves stored tasks that cannot be read to the file's
// quarantine bucket, where they are kept and never delivered.
func (s *FileStore) Quarantine(recs ...Record) error {
	if len(recs) == 0 {
		return nil
	}
	return s.submit(&commitReq{bad: recs})
}

// Quarantined returns the records in the file's quarantine bucket.
func (s *FileStore) Quarantined() ([]Record, error) {
	var out []Record
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketQuarantine).ForEach(func(k, v []byte) error {
			if len(k) == 8 {
				out = append(out, Record{Seq: binary.BigEndian.Uint64(k), Data: append([]byte(nil), v...)})
			}
			return nil
		})
	})
	return out, err
}

// Close implements Store. It waits for writes in progress.
func (s *FileStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.mu.Unlock()
	<-s.done
	return s.db.Close()
}
