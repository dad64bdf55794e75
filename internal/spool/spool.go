package spool

import (
	"bufio"
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
)

const (
	headerSize = 16       // subxid uint32 | lsn uint64 | length uint32
	bufSize    = 64 << 10 // write and read buffer per file
	maxOpen    = 32       // files open for writing at once
	keepBuf    = 1 << 20  // record buffers up to this size are kept for the next replay
	fileSuffix = ".spool"
)

var (
	// ErrFull is wrapped by the error Append returns when the bound on the spooled bytes would be
	// exceeded.
	ErrFull = errors.New("spool full")
	// ErrCorrupt is wrapped by the errors reporting a truncated or otherwise damaged spool file.
	ErrCorrupt = errors.New("spool file corrupt")
	// ErrClosed is returned by operations on a closed Spool.
	ErrClosed = errors.New("spool closed")
)

// Spool keeps the streamed changes of in-progress transactions in files under one directory, one
// file per top-level xid. It is used by one goroutine and does no locking.
type Spool struct {
	dir      string
	maxBytes int64
	bytes    int64 // all spool files, including those being replayed
	seq      uint64
	closed   bool

	txns    map[uint32]*txn        // in progress (appendable)
	lru     *list.List             // txns with an open file, most recently used first
	iters   map[*Iterator]struct{} // replays not yet closed
	writers []*bufio.Writer        // idle write buffers
	readers []*bufio.Reader        // idle read buffers
	buf     []byte                 // idle record buffer
	hdr     [headerSize]byte

	maxOpen int // files open for writing at most (the maxOpen constant)
}

// txn is one top-level transaction's spool file.
type txn struct {
	xid     uint32
	path    string
	size    int64               // bytes written (buffered or not)
	aborted map[uint32]struct{} // aborted subtransactions
	err     error               // a failed write or flush: the file is unusable

	f    *os.File
	w    *bufio.Writer
	elem *list.Element // in Spool.lru while f is open

	// The trailing run of records of one subtransaction: when that subtransaction aborts, the file
	// is truncated to tailStart.
	tailSub   uint32
	tailStart int64
	tailValid bool

	released bool // its bytes were subtracted from Spool.bytes
}

// Open prepares dir (creating it 0700) and deletes every spool file (*.spool) a previous run left
// there: spools are never resumed, after a reconnect PostgreSQL streams the transactions again.
// maxBytes bounds the total size of all spool files; 0 means no bound.
func Open(dir string, maxBytes int64) (*Spool, error) {
	if dir == "" {
		return nil, errors.New("spool: no directory given (postgres.spool_dir)")
	}
	if maxBytes < 0 {
		return nil, fmt.Errorf("spool: negative bound %d", maxBytes)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: create directory %s: %w", dir, err)
	}
	s := &Spool{
		dir:      dir,
		maxBytes: maxBytes,
		txns:     make(map[uint32]*txn),
		lru:      list.New(),
		iters:    make(map[*Iterator]struct{}),
		maxOpen:  maxOpen,
	}
	if err := s.sweep(); err != nil {
		return nil, err
	}
	return s, nil
}

// sweep removes every *.spool regular file in the directory.
func (s *Spool) sweep() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: read directory %s: %w", s.dir, err)
	}
	var first error
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), fileSuffix) {
			continue
		}
		if err := removeFile(filepath.Join(s.dir, e.Name())); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Append records one streamed message of top-level transaction xid made by (sub)transaction
// subxid (subxid == xid for the top level). lsn is the message's WAL position (XLogData
// WALStart); data is the raw pgoutput message and is copied. An Append that would take the spool
// over its bound fails with an error wrapping ErrFull and spools nothing. Messages of a
// subtransaction already aborted are dropped.
func (s *Spool) Append(xid, subxid uint32, lsn uint64, data []byte) error {
	if s.closed {
		return ErrClosed
	}
	if uint64(len(data)) > math.MaxUint32 {
		return fmt.Errorf("spool: message of %d bytes in transaction %d is too large to spool (max %d)", len(data), xid, uint32(math.MaxUint32))
	}
	t := s.txns[xid]
	if t != nil {
		if t.err != nil {
			return t.err
		}
		if _, ok := t.aborted[subxid]; ok {
			return nil
		}
	}
	need := int64(headerSize + len(data))
	if s.maxBytes > 0 && s.bytes+need > s.maxBytes {
		var mine int64
		if t != nil {
			mine = t.size
		}
		return fmt.Errorf("%w: transaction %d has %d bytes spooled and the spool holds %d bytes for %d transactions; "+
			"a message of %d more bytes would exceed the bound of %d bytes: raise postgres.spool_max_bytes "+
			"or turn postgres.streaming off", ErrFull, xid, mine, s.bytes, len(s.txns)+len(s.iters), len(data), s.maxBytes)
	}
	if t == nil {
		s.seq++
		t = &txn{xid: xid, path: filepath.Join(s.dir, fmt.Sprintf("%d-%d%s", xid, s.seq, fileSuffix))}
		s.txns[xid] = t
	}
	if err := s.open(t); err != nil {
		t.err = err
		return err
	}
	binary.LittleEndian.PutUint32(s.hdr[0:4], subxid)
	binary.LittleEndian.PutUint64(s.hdr[4:12], lsn)
	binary.LittleEndian.PutUint32(s.hdr[12:16], uint32(len(data)))
	if _, err := t.w.Write(s.hdr[:]); err != nil {
		t.err = fmt.Errorf("spool: write %s: %w", t.path, err)
		return t.err
	}
	if _, err := t.w.Write(data); err != nil {
		t.err = fmt.Errorf("spool: write %s: %w", t.path, err)
		return t.err
	}
	if !t.tailValid || t.tailSub != subxid {
		t.tailSub, t.tailStart, t.tailValid = subxid, t.size, true
	}
	t.size += need
	s.bytes += need
	return nil
}

// open makes sure t has an open file and write buffer, closing the least recently used file if
// too many are open.
func (s *Spool) open(t *txn) error {
	if t.f != nil {
		s.lru.MoveToFront(t.elem)
		return nil
	}
	for s.lru.Len() >= s.maxOpen {
		old := s.lru.Back().Value.(*txn)
		if err := s.closeFile(old); err != nil && old.err == nil {
			old.err = err // reported by the next operation on that transaction
		}
	}
	flags := os.O_WRONLY | os.O_APPEND | os.O_CREATE
	if t.size == 0 {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(t.path, flags, 0o600)
	if err != nil {
		return fmt.Errorf("spool: open %s: %w", t.path, err)
	}
	var w *bufio.Writer
	if n := len(s.writers); n > 0 {
		w, s.writers = s.writers[n-1], s.writers[:n-1]
		w.Reset(f)
	} else {
		w = bufio.NewWriterSize(f, bufSize)
	}
	t.f, t.w = f, w
	t.elem = s.lru.PushFront(t)
	return nil
}

// closeFile flushes and closes t's file if it is open, keeping its write buffer for reuse.
func (s *Spool) closeFile(t *txn) error {
	if t.f == nil {
		return nil
	}
	err := t.w.Flush()
	if err != nil {
		err = fmt.Errorf("spool: write %s: %w", t.path, err)
	}
	if cerr := t.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("spool: close %s: %w", t.path, cerr)
	}
	t.w.Reset(nil) // drops anything a failed flush left
	s.writers = append(s.writers, t.w)
	s.lru.Remove(t.elem)
	t.f, t.w, t.elem = nil, nil, nil
	return err
}

// discard closes and removes t's file and releases its bytes.
func (s *Spool) discard(t *txn) error {
	_ = s.closeFile(t) // the content is thrown away
	s.release(t)
	return removeFile(t.path)
}

func (s *Spool) release(t *txn) {
	if !t.released {
		s.bytes -= t.size
		t.released = true
	}
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool: remove %s: %w", path, err)
	}
	return nil
}

// Abort discards subtransaction subxid of xid (only its records), or the whole transaction when
// subxid == xid (its file is removed at once and its bytes released). Aborting a transaction with
// nothing spooled does nothing.
func (s *Spool) Abort(xid, subxid uint32) error {
	if s.closed {
		return ErrClosed
	}
	t := s.txns[xid]
	if t == nil {
		return nil
	}
	if subxid == xid {
		delete(s.txns, xid)
		return s.discard(t)
	}
	if t.aborted == nil {
		t.aborted = make(map[uint32]struct{})
	}
	t.aborted[subxid] = struct{}{}
	if t.err == nil && t.tailValid && t.tailSub == subxid {
		s.truncateTail(t)
	}
	return nil
}

// truncateTail drops the trailing run of records of t.tailSub from the file. It is only an
// optimisation (the aborted set already hides those records), so a failure leaves the file as it
// is, unless the buffered records cannot be flushed, which makes the file unusable.
func (s *Spool) truncateTail(t *txn) {
	if t.f != nil {
		if err := t.w.Flush(); err != nil {
			t.err = fmt.Errorf("spool: write %s: %w", t.path, err)
			return
		}
	}
	if err := os.Truncate(t.path, t.tailStart); err != nil {
		return
	}
	s.bytes -= t.size - t.tailStart
	t.size = t.tailStart
	t.tailValid = false
}

// Commit returns an iterator over the surviving records of xid in append order; the file is
// removed, and its bytes released from the bound, when the iterator is closed. A transaction with
// nothing spooled yields an empty iterator. After Commit the xid is no longer in progress: a
// later Append with the same xid starts a new transaction. If the file cannot be read back, it is
// removed and the error (wrapping ErrCorrupt if the file is damaged) names it.
func (s *Spool) Commit(xid uint32) (*Iterator, error) {
	if s.closed {
		return nil, ErrClosed
	}
	t := s.txns[xid]
	if t == nil {
		return &Iterator{}, nil
	}
	delete(s.txns, xid)
	err := s.closeFile(t)
	if t.err != nil {
		err = t.err
	}
	if err != nil {
		_ = s.discard(t)
		return nil, err
	}
	f, err := os.Open(t.path)
	if err != nil {
		_ = s.discard(t)
		return nil, fmt.Errorf("spool: open %s for replay of transaction %d: %w", t.path, xid, err)
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() != t.size {
		err = fmt.Errorf("%w: %s holds %d bytes, %d were written for transaction %d", ErrCorrupt, t.path, fi.Size(), t.size, xid)
	}
	if err != nil {
		f.Close()
		_ = s.discard(t)
		return nil, err
	}
	it := &Iterator{s: s, t: t, f: f}
	if n := len(s.readers); n > 0 {
		it.r, s.readers = s.readers[n-1], s.readers[:n-1]
		it.r.Reset(f)
	} else {
		it.r = bufio.NewReaderSize(f, bufSize)
	}
	it.buf, s.buf = s.buf, nil
	s.iters[it] = struct{}{}
	return it, nil
}

// Reset removes every spool file (called on reconnect): transactions in progress are forgotten
// and open iterators fail.
func (s *Spool) Reset() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	for xid, t := range s.txns {
		delete(s.txns, xid)
		keep(s.discard(t))
	}
	for it := range s.iters {
		it.fail(fmt.Errorf("spool: reset while replaying transaction %d", it.t.xid))
		keep(it.Close())
	}
	s.bytes = 0
	keep(s.sweep())
	return first
}

// Bytes returns the bytes currently spooled (all files, including those of transactions being
// replayed until their iterator is closed).
func (s *Spool) Bytes() int64 { return s.bytes }

// Open returns the number of transactions in progress (spooled, not yet committed or aborted).
func (s *Spool) Open() int { return len(s.txns) }

// Close closes and removes all spool files; the directory stays. Later operations fail with
// ErrClosed.
func (s *Spool) Close() error {
	if s.closed {
		return nil
	}
	err := s.Reset()
	s.closed = true
	s.writers, s.readers, s.buf = nil, nil, nil
	return err
}
