package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucketTasks = []byte("tasks")

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
	errc chan error
}

// OpenFile opens or creates the outbox file at path. The file is locked for
// the process; a second opener fails after a second with an error that says
// so.
func OpenFile(path string) (*FileStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        time.Second,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("outbox: open %s: file is locked by another process", path)
		}
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketTasks)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("outbox: init %s: %w", path, err)
	}
	s := &FileStore{db: db, path: path, reqs: make(chan *commitReq, maxCommitBatch), done: make(chan struct{})}
	go s.commitLoop()
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
			b := tx.Bucket(bucketTasks)
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
