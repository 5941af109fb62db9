package outbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt v1.5's file format, as far as the check reads it
// (go.etcd.io/bbolt/internal/common): pages of meta.pageSize bytes, each
// with a 16-byte header (id, flags, count, overflow); pages 0 and 1 hold
// the two metas; branch and leaf pages hold 16-byte elements whose pos is
// relative to the element. Integers are little-endian (amd64, arm64).
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16
	elementSize      = 16
	bucketHeaderSize = 16
	metaChecksumAt   = 56 // bytes of the meta covered by its checksum
	metaSize         = 64
	flagBranch       = 0x01
	flagLeaf         = 0x02
	flagMeta         = 0x04
	flagFreelist     = 0x10
	leafBucketFlag   = 0x01
	noFreelist       = ^uint64(0)
	maxWalkDepth     = 64
)

// fileReport is what checkFile found.
type fileReport struct {
	// problem says why bbolt could fault or panic on the file; empty when
	// every page that bbolt reads when it opens it and reads the tasks is
	// sound.
	problem string
	// records are the tasks that could be read, in key order.
	records []Record
	// scanned is true when no meta was valid and records come from a scan
	// of every page, which can find tasks that were delivered and deleted.
	scanned bool
}

// meta is a bbolt meta page.
type boltMeta struct {
	pageSize uint32
	root     uint64 // root bucket's page
	freelist uint64
	hwm      uint64 // high water mark: pages in use
	txid     uint64
	valid    bool
}

func parseMeta(b []byte) boltMeta {
	if len(b) < metaSize {
		return boltMeta{}
	}
	le := binary.LittleEndian
	m := boltMeta{
		pageSize: le.Uint32(b[8:]),
		root:     le.Uint64(b[16:]),
		freelist: le.Uint64(b[32:]),
		hwm:      le.Uint64(b[40:]),
		txid:     le.Uint64(b[48:]),
	}
	h := fnv.New64a()
	_, _ = h.Write(b[:metaChecksumAt])
	m.valid = le.Uint32(b[0:]) == boltMagic && le.Uint32(b[4:]) == boltVersion && le.Uint64(b[56:]) == h.Sum64()
	return m
}

// checkFile reads the outbox file at path as bbolt would, without mmap and
// without bbolt, so that no damage can fault or panic the process: it picks
// the meta bbolt would pick, checks that the file holds every page in use,
// and walks the tree from the root bucket, checking each page's ID, type,
// bounds, element bounds and key order, and that no page is reached twice.
// It collects the tasks of the tasks bucket as it goes, skipping what it
// cannot read. An empty file is sound (bbolt initialises it).
func checkFile(path string) (fileReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileReport{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fileReport{}, err
	}
	w := &walker{f: f, size: st.Size(), seen: map[uint64]bool{}}
	if w.size == 0 {
		return fileReport{}, nil
	}
	head := make([]byte, min(w.size, 64<<10+metaSize+pageHeaderSize))
	if _, err := f.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return fileReport{}, err
	}
	m0 := parseMeta(head[min(pageHeaderSize, len(head)):])
	var m1 boltMeta
	if m0.valid && validPageSize(m0.pageSize) && int(m0.pageSize)+pageHeaderSize < len(head) {
		m1 = parseMeta(head[m0.pageSize+pageHeaderSize:])
	}
	// bbolt's DB.meta: the meta with the higher txid if it is valid, else
	// the other one.
	a, b := m0, m1
	if m1.txid > m0.txid {
		a, b = m1, m0
	}
	m := a
	if !a.valid {
		m = b
	}
	if !m.valid {
		rep := fileReport{problem: "neither meta page is valid", scanned: true}
		rep.records = w.scanAll()
		return rep, nil
	}
	w.pageSize = uint64(m.pageSize)
	switch {
	case !validPageSize(m.pageSize):
		return w.fail(fmt.Sprintf("page size %d is not a power of two from 512 to 65536", m.pageSize)), nil
	case m.hwm < 2 || m.hwm*w.pageSize > uint64(w.size):
		return w.fail(fmt.Sprintf("the meta says %d pages are in use; the file holds %d", m.hwm, uint64(w.size)/w.pageSize)), nil
	case m.freelist != noFreelist:
		// This outbox never syncs its freelist; bbolt would read this one.
		return w.fail("the file has a stored freelist, which this outbox never writes"), nil
	}
	w.hwm = m.hwm
	w.walkPage(m.root, 0, 0, false, nil, nil)
	return fileReport{problem: w.problem, records: w.records}, nil
}

func validPageSize(n uint32) bool { return n >= 512 && n <= 64<<10 && n&(n-1) == 0 }

// walker walks a bbolt file's tree.
type walker struct {
	f        *os.File
	size     int64
	pageSize uint64
	hwm      uint64
	seen     map[uint64]bool
	problem  string
	records  []Record
}

func (w *walker) note(format string, args ...any) {
	if w.problem == "" {
		w.problem = fmt.Sprintf(format, args...)
	}
}

func (w *walker) fail(problem string) fileReport {
	return fileReport{problem: problem, records: w.scanAll(), scanned: true}
}

// page reads page id and its overflow pages, checking its header; nil when
// it is not a sound branch or leaf page.
func (w *walker) page(id uint64) []byte {
	if id < 2 || id >= w.hwm {
		w.note("page %d is outside the pages in use (2 to %d)", id, w.hwm-1)
		return nil
	}
	if w.seen[id] {
		w.note("page %d is reached twice", id)
		return nil
	}
	w.seen[id] = true
	head := make([]byte, pageHeaderSize)
	if _, err := w.f.ReadAt(head, int64(id*w.pageSize)); err != nil {
		w.note("page %d cannot be read: %v", id, err)
		return nil
	}
	le := binary.LittleEndian
	overflow := uint64(le.Uint32(head[12:]))
	if got := le.Uint64(head[0:]); got != id {
		w.note("page %d identifies as page %d", id, got)
		return nil
	}
	if flags := le.Uint16(head[8:]); flags != flagBranch && flags != flagLeaf {
		w.note("page %d has flags %#x, not a branch or leaf page", id, flags)
		return nil
	}
	if id+overflow >= w.hwm || (id+overflow+1)*w.pageSize > uint64(w.size) {
		w.note("page %d overflows past the pages in use", id)
		return nil
	}
	for i := uint64(1); i <= overflow; i++ {
		if w.seen[id+i] {
			w.note("page %d is reached twice", id+i)
			return nil
		}
		w.seen[id+i] = true
	}
	buf := make([]byte, (overflow+1)*w.pageSize)
	if _, err := w.f.ReadAt(buf, int64(id*w.pageSize)); err != nil {
		w.note("page %d cannot be read: %v", id, err)
		return nil
	}
	return buf
}

// element is one element of a page: its flags, key and value (leaf) or
// child page (branch).
type element struct {
	flags      uint32
	key, value []byte
	child      uint64
}

// elements parses the elements of a page held in buf, checking that each
// lies within buf and that the keys ascend within [lo, hi).
func (w *walker) elements(buf []byte, where string, lo, hi []byte) ([]element, bool) {
	le := binary.LittleEndian
	flags, count := le.Uint16(buf[8:]), int(le.Uint16(buf[10:]))
	if pageHeaderSize+count*elementSize > len(buf) {
		w.note("%s: %d elements do not fit in the page", where, count)
		return nil, false
	}
	if flags == flagBranch && count == 0 {
		w.note("%s: a branch page without elements", where)
		return nil, false
	}
	out := make([]element, count)
	for i := range out {
		at := pageHeaderSize + i*elementSize
		e := buf[at : at+elementSize]
		var el element
		var pos, ksize, vsize uint64
		if flags == flagBranch {
			pos, ksize = uint64(le.Uint32(e[0:])), uint64(le.Uint32(e[4:]))
			el.child = le.Uint64(e[8:])
		} else {
			el.flags = le.Uint32(e[0:])
			pos, ksize, vsize = uint64(le.Uint32(e[4:])), uint64(le.Uint32(e[8:])), uint64(le.Uint32(e[12:]))
		}
		start := uint64(at) + pos
		if start+ksize+vsize > uint64(len(buf)) {
			w.note("%s: element %d lies outside its page", where, i)
			return nil, false
		}
		el.key = buf[start : start+ksize]
		el.value = buf[start+ksize : start+ksize+vsize]
		if (i > 0 && bytes.Compare(out[i-1].key, el.key) > 0) || (lo != nil && bytes.Compare(el.key, lo) < 0) ||
			(hi != nil && bytes.Compare(el.key, hi) >= 0) {
			w.note("%s: keys out of order at element %d", where, i)
			return nil, false
		}
		out[i] = el
	}
	return out, true
}

// walkBucket walks the bucket whose root is page root (or the inline page
// inline) at bucket nesting level nest, collecting records when tasks is
// set.
func (w *walker) walkBucket(root uint64, inline []byte, nest int, tasks bool) {
	if nest > maxWalkDepth {
		w.note("buckets nest deeper than %d", maxWalkDepth)
		return
	}
	if root == 0 {
		if len(inline) < pageHeaderSize {
			w.note("an inline bucket is shorter than a page header")
			return
		}
		if flags := binary.LittleEndian.Uint16(inline[8:]); flags != flagLeaf {
			w.note("an inline bucket's page has flags %#x, not a leaf page", flags)
			return
		}
		w.walkLeaf(inline, "an inline bucket", nest, tasks, nil, nil)
		return
	}
	w.walkPage(root, 0, nest, tasks, nil, nil)
}

// walkPage walks page id at depth in its bucket's tree; its keys must lie
// in [lo, hi) (nil: unbounded), as bbolt's check requires.
func (w *walker) walkPage(id uint64, depth, nest int, tasks bool, lo, hi []byte) {
	if depth > maxWalkDepth {
		w.note("a bucket's tree is deeper than %d", maxWalkDepth)
		return
	}
	buf := w.page(id)
	if buf == nil {
		return
	}
	where := fmt.Sprintf("page %d", id)
	if binary.LittleEndian.Uint16(buf[8:]) == flagLeaf {
		w.walkLeaf(buf, where, nest, tasks, lo, hi)
		return
	}
	elems, ok := w.elements(buf, where, lo, hi)
	if !ok {
		return
	}
	for i, e := range elems {
		next := hi
		if i+1 < len(elems) {
			next = elems[i+1].key
		}
		w.walkPage(e.child, depth+1, nest, tasks, e.key, next)
	}
}

func (w *walker) walkLeaf(buf []byte, where string, nest int, tasks bool, lo, hi []byte) {
	elems, ok := w.elements(buf, where, lo, hi)
	if !ok {
		return
	}
	for _, e := range elems {
		switch {
		case e.flags&^leafBucketFlag != 0:
			w.note("%s: element flags %#x", where, e.flags)
		case e.flags&leafBucketFlag != 0:
			if len(e.value) < bucketHeaderSize {
				w.note("%s: a bucket value of %d bytes", where, len(e.value))
				continue
			}
			root := binary.LittleEndian.Uint64(e.value[0:])
			w.walkBucket(root, e.value[bucketHeaderSize:], nest+1, nest == 0 && bytes.Equal(e.key, bucketTasks))
		case tasks:
			if len(e.key) != 8 {
				w.note("%s: a task key of %d bytes", where, len(e.key))
				continue
			}
			w.records = append(w.records, Record{Seq: binary.BigEndian.Uint64(e.key), Data: bytes.Clone(e.value)})
		}
	}
}

// scanAll reads every page-sized block of the file and keeps the records
// of leaf pages whose elements are well formed and whose values decode as
// tasks: the salvage when the tree cannot be followed. Blocks that are not
// leaf pages, and elements that do not decode, are skipped. Record keys
// seen twice keep the first.
func (w *walker) scanAll() []Record {
	ps := w.pageSize
	if ps == 0 {
		ps = 4096
	}
	var out []Record
	seen := map[uint64]bool{}
	buf := make([]byte, ps)
	quiet := &walker{}
	for id := uint64(2); int64((id+1)*ps) <= w.size; id++ {
		if _, err := w.f.ReadAt(buf, int64(id*ps)); err != nil {
			break
		}
		le := binary.LittleEndian
		if le.Uint64(buf[0:]) != id || le.Uint16(buf[8:]) != flagLeaf || le.Uint32(buf[12:]) != 0 {
			continue
		}
		elems, ok := quiet.elements(buf, "", nil, nil)
		if !ok {
			continue
		}
		for _, e := range elems {
			if e.flags != 0 || len(e.key) != 8 {
				continue
			}
			seq := binary.BigEndian.Uint64(e.key)
			if seen[seq] {
				continue
			}
			if _, err := decode(e.value); err != nil {
				continue
			}
			seen[seq] = true
			out = append(out, Record{Seq: seq, Data: bytes.Clone(e.value)})
		}
	}
	return out
}
