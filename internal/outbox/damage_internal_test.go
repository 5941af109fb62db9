package outbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/redistest"
)

// damagedLog collects log lines.
type damagedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *damagedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *damagedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// heldFile writes an outbox file holding n tasks (IDs dmg-0000...), in
// one transaction per 50.
func heldFile(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "outbox.db")
	s, err := OpenFile(path)
	require.NoError(t, err)
	var recs []Record
	for i := range n {
		sp, err := compose(asynq.NewTask("dmg:t", []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("p", 100)))),
			nil, fmt.Sprintf("dmg-%04d", i), time.Now())
		require.NoError(t, err)
		data, err := sp.encode()
		require.NoError(t, err)
		recs = append(recs, Record{Seq: uint64(i + 1), Data: data})
		if len(recs) == 50 || i == n-1 {
			require.NoError(t, s.Append(recs...))
			recs = nil
		}
	}
	require.NoError(t, s.Close())
	return path
}

// taskLeaves returns the page numbers of the leaf pages of the tasks
// bucket (8-byte keys), with their element counts, as checkFile reads them.
func taskLeaves(t *testing.T, path string) map[uint64]int {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	ps := uint64(binary.LittleEndian.Uint32(b[pageHeaderSize+8:]))
	out := map[uint64]int{}
	for id := uint64(2); (id+1)*ps <= uint64(len(b)); id++ {
		p := b[id*ps : (id+1)*ps]
		count := int(binary.LittleEndian.Uint16(p[10:]))
		if binary.LittleEndian.Uint64(p) != id || binary.LittleEndian.Uint16(p[8:]) != flagLeaf || count == 0 {
			continue
		}
		if binary.LittleEndian.Uint32(p[pageHeaderSize+8:]) == 8 { // first key's size
			out[id] = count
		}
	}
	return out
}

// liveLeaves is taskLeaves restricted to the pages checkFile reaches: those
// whose first key is a record it read.
func liveLeaves(t *testing.T, path string) map[uint64]int {
	t.Helper()
	rep, err := checkFile(path)
	require.NoError(t, err)
	require.Empty(t, rep.problem)
	seqs := map[uint64]bool{}
	for _, r := range rep.records {
		seqs[r.Seq] = true
	}
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	ps := uint64(binary.LittleEndian.Uint32(b[pageHeaderSize+8:]))
	live := map[uint64]int{}
	for id, n := range taskLeaves(t, path) {
		p := b[id*ps:]
		pos := uint64(binary.LittleEndian.Uint32(p[pageHeaderSize+4:]))
		key := p[pageHeaderSize+pos : pageHeaderSize+pos+8]
		if seqs[binary.BigEndian.Uint64(key)] {
			live[id] = n
		}
	}
	return live
}

func corrupt(t *testing.T, path string, at int64, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt(data, at)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// TestDamagedOutboxFile: each damage of the issue (a truncated file, a
// zeroed leaf page, random bytes in element headers) used to fault or
// panic the process in bbolt. Now OpenFile moves the file aside, logs one
// ERROR naming both paths, and a fresh outbox delivers every task that
// could be read, once.
func TestDamagedOutboxFile(t *testing.T) {
	t.Parallel()
	const n = 300
	s := redistest.Start(t)
	tests := []struct {
		name    string
		damage  func(t *testing.T, path string) (lost int)
		minKept int
	}{
		{"truncated to 16 KiB", func(t *testing.T, path string) int {
			require.NoError(t, os.Truncate(path, 16<<10))
			return -1 // what the first four pages held
		}, 0},
		{"truncated to half", func(t *testing.T, path string) int {
			st, err := os.Stat(path)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(path, st.Size()/2))
			return -1
		}, 1},
		{"zeroed leaf page", func(t *testing.T, path string) int {
			for id, count := range liveLeaves(t, path) {
				corrupt(t, path, int64(id)*4096, make([]byte, 4096))
				return count
			}
			t.Fatal("no leaf page")
			return 0
		}, n / 2},
		{"random element headers", func(t *testing.T, path string) int {
			r := rand.New(rand.NewPCG(15, 15))
			for id, count := range liveLeaves(t, path) {
				junk := make([]byte, count*elementSize)
				for i := range junk {
					junk[i] = byte(r.Uint32())
				}
				corrupt(t, path, int64(id)*4096+pageHeaderSize, junk)
				return count
			}
			t.Fatal("no leaf page")
			return 0
		}, n / 2},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := heldFile(t, n)
			lost := tt.damage(t, path)
			logs := &damagedLog{}
			log := slog.New(slog.NewJSONHandler(logs, nil))
			st, err := OpenFile(path, WithLogger(log))
			require.NoError(t, err, "a damaged file never stops the outbox")
			require.Equal(t, 1, strings.Count(logs.String(), `"level":"ERROR"`), logs.String())
			require.Contains(t, logs.String(), `"path":"`+path+`"`)
			moved, err := filepath.Glob(path + ".corrupt-*")
			require.NoError(t, err)
			require.Len(t, moved, 1)
			require.Contains(t, logs.String(), `"moved_to":"`+moved[0]+`"`)

			rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), DB: i + 1})
			t.Cleanup(func() { _ = rdb.Close() })
			c, err := New(asynq.NewClientFromRedisClient(rdb), func() bool { return true }, Options{Store: st, Logger: log})
			require.NoError(t, err)
			held, _ := c.Depth()
			t.Logf("%s: %d of %d tasks recovered", tt.name, held, n)
			require.GreaterOrEqual(t, held, tt.minKept)
			if lost >= 0 {
				require.Equal(t, n-lost, held, "every task outside the damaged page is recovered")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(t, c.Flush(ctx))
			require.NoError(t, c.Close())
			pending, err := asynq.NewInspectorFromRedisClient(rdb).ListPendingTasks("default", asynq.PageSize(1000))
			require.NoError(t, err)
			require.Len(t, pending, held, "each recovered task delivered once")

			// The fresh file is sound.
			rep, err := checkFile(path)
			require.NoError(t, err)
			require.Empty(t, rep.problem)
		})
	}
}

// TestUnreadableRecordQuarantined: one record that does not decode is moved
// to the file's quarantine bucket with one ERROR line; the others drain.
func TestUnreadableRecordQuarantined(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	path := heldFile(t, 10)
	st, err := OpenFile(path)
	require.NoError(t, err)
	require.NoError(t, st.Append(Record{Seq: 5, Data: []byte("not a record")}))
	require.NoError(t, st.Close())

	logs := &damagedLog{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	st, err = OpenFile(path, WithLogger(log))
	require.NoError(t, err)
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	c, err := New(asynq.NewClientFromRedisClient(rdb), func() bool { return true }, Options{Store: st, Logger: log})
	require.NoError(t, err)
	n, _ := c.Depth()
	require.Equal(t, 9, n)
	require.Equal(t, 1, strings.Count(logs.String(), `"level":"ERROR"`), logs.String())
	require.Contains(t, logs.String(), "moved to the file's quarantine bucket")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.Flush(ctx))
	require.NoError(t, c.Close())

	st, err = OpenFile(path)
	require.NoError(t, err)
	defer st.Close()
	q, err := st.Quarantined()
	require.NoError(t, err)
	require.Equal(t, []Record{{Seq: 5, Data: []byte("not a record")}}, q)
}

// FuzzDecodeRecord: decode never panics, and what it accepts survives a
// round trip.
func FuzzDecodeRecord(f *testing.F) {
	sp, _ := compose(asynq.NewTask("t", []byte(`{}`)), []asynq.Option{asynq.Queue("q"), asynq.ProcessIn(time.Hour)}, "id-1", time.Unix(1e9, 0))
	good, _ := sp.encode()
	f.Add(good)
	f.Add([]byte(`{"v":1,"id":"a","type":"t","queue":"q","payload":"!!"}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decode(b)
		if err != nil {
			return
		}
		again, err := s.encode()
		require.NoError(t, err)
		s2, err := decode(again)
		require.NoError(t, err)
		require.Equal(t, s.ID, s2.ID)
		require.Equal(t, s.Type, s2.Type)
		require.Equal(t, s.Queue, s2.Queue)
		// An empty payload may come back nil: the same task to asynq.
		require.True(t, bytes.Equal(s.Payload, s2.Payload), "payload %q came back as %q", s.Payload, s2.Payload)
		task, opts := s2.task()
		require.Equal(t, s.Type, task.Type())
		require.NotEmpty(t, opts)
	})
}

// FuzzOpenDamagedFile: random bytes written over a sound outbox file never
// crash OpenFile (checkFile in front of bbolt): it opens the file or moves
// it aside.
func FuzzOpenDamagedFile(f *testing.F) {
	base := fuzzBaseFile(f)
	f.Add(uint32(2*4096+16), []byte{0xff, 0xff, 0xff, 0xff})
	f.Add(uint32(16), []byte{1, 2, 3})
	f.Add(uint32(3*4096), make([]byte, 4096))
	f.Fuzz(func(t *testing.T, at uint32, junk []byte) {
		path := filepath.Join(t.TempDir(), "outbox.db")
		b := bytes.Clone(base)
		if len(junk) > 0 {
			at %= uint32(len(b))
			copy(b[at:], junk)
		}
		require.NoError(t, os.WriteFile(path, b, 0o600))
		st, err := OpenFile(path, WithLogger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		var n int
		require.NoError(t, st.Load(func(Record) error { n++; return nil }))
		require.NoError(t, st.Close())
	})
}

var (
	fuzzBaseOnce sync.Once
	fuzzBase     []byte
)

func fuzzBaseFile(f *testing.F) []byte {
	fuzzBaseOnce.Do(func() {
		dir, err := os.MkdirTemp("", "outbox-fuzz")
		if err != nil {
			f.Fatal(err)
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "outbox.db")
		s, err := OpenFile(path)
		if err != nil {
			f.Fatal(err)
		}
		var recs []Record
		for i := range 60 {
			sp, _ := compose(asynq.NewTask("fz", []byte(strings.Repeat("x", 150))), nil, fmt.Sprintf("fz-%d", i), time.Unix(1e9, 0))
			data, _ := sp.encode()
			recs = append(recs, Record{Seq: uint64(i + 1), Data: data})
		}
		if err := s.Append(recs...); err != nil {
			f.Fatal(err)
		}
		_ = s.Close()
		fuzzBase, err = os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
	})
	return fuzzBase
}
