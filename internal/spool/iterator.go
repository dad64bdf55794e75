package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Iterator replays the surviving records of one committed transaction in append order. The zero
// Iterator (returned for a transaction with nothing spooled) is empty.
type Iterator struct {
	s   *Spool
	t   *txn
	f   *os.File
	r   *bufio.Reader
	buf []byte // grows to the largest record
	off int64  // bytes of the file consumed
	hdr [headerSize]byte

	subxid uint32
	lsn    uint64
	data   []byte

	err    error
	done   bool
	closed bool
}

// Next advances to the next surviving record. It returns false at the end or on error (see Err).
func (it *Iterator) Next() bool {
	it.data = nil
	if it.t == nil || it.err != nil || it.done || it.closed {
		return false
	}
	for {
		if it.off == it.t.size {
			if _, err := it.r.ReadByte(); err != io.EOF {
				if err == nil {
					err = fmt.Errorf("%w: %s is longer than the %d bytes written", ErrCorrupt, it.t.path, it.t.size)
				} else {
					err = fmt.Errorf("spool: read %s: %w", it.t.path, err)
				}
				it.fail(err)
				return false
			}
			it.done = true
			return false
		}
		if rest := it.t.size - it.off; rest < headerSize {
			it.fail(fmt.Errorf("%w: %s: record header at offset %d cut short (%d bytes left)", ErrCorrupt, it.t.path, it.off, rest))
			return false
		}
		if err := it.read(it.hdr[:], "record header", 0); err != nil {
			it.fail(err)
			return false
		}
		sub := binary.LittleEndian.Uint32(it.hdr[0:4])
		lsn := binary.LittleEndian.Uint64(it.hdr[4:12])
		n := int64(binary.LittleEndian.Uint32(it.hdr[12:16]))
		if rest := it.t.size - it.off - headerSize; n > rest {
			it.fail(fmt.Errorf("%w: %s: record at offset %d claims %d bytes but only %d remain", ErrCorrupt, it.t.path, it.off, n, rest))
			return false
		}
		if _, skip := it.t.aborted[sub]; skip {
			if _, err := it.r.Discard(int(n)); err != nil {
				it.fail(it.readErr(err, "record", headerSize))
				return false
			}
			it.off += headerSize + n
			continue
		}
		if int64(cap(it.buf)) < n {
			it.buf = make([]byte, n)
		}
		data := it.buf[:n]
		if err := it.read(data, "record", headerSize); err != nil {
			it.fail(err)
			return false
		}
		it.subxid, it.lsn, it.data = sub, lsn, data
		it.off += headerSize + n
		return true
	}
}

// read fills p with the part what of the record at it.off, which starts at it.off+at.
func (it *Iterator) read(p []byte, what string, at int64) error {
	if _, err := io.ReadFull(it.r, p); err != nil {
		return it.readErr(err, what, at)
	}
	return nil
}

func (it *Iterator) readErr(err error, what string, at int64) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s: %s at offset %d cut short", ErrCorrupt, it.t.path, what, it.off+at)
	}
	return fmt.Errorf("spool: read %s: %w", it.t.path, err)
}

func (it *Iterator) fail(err error) {
	if it.err == nil {
		it.err = err
	}
	it.data = nil
}

// Record returns the current record: the (sub)transaction that made it, its WAL position and the
// raw pgoutput message. data is valid until the next call to Next or Close.
func (it *Iterator) Record() (subxid uint32, lsn uint64, data []byte) {
	return it.subxid, it.lsn, it.data
}

// Err returns the error that ended the iteration, if any.
func (it *Iterator) Err() error { return it.err }

// Close removes the transaction's file and releases its bytes from the bound. It may be called
// more than once.
func (it *Iterator) Close() error {
	if it.closed {
		return nil
	}
	it.closed = true
	it.data = nil
	if it.t == nil {
		return nil
	}
	s := it.s
	cerr := it.f.Close()
	err := removeFile(it.t.path)
	s.release(it.t)
	delete(s.iters, it)
	if !s.closed {
		it.r.Reset(nil)
		s.readers = append(s.readers, it.r)
		if cap(it.buf) <= keepBuf && cap(it.buf) > cap(s.buf) {
			s.buf = it.buf
		}
	}
	it.r, it.buf, it.f = nil, nil, nil
	if err == nil && cerr != nil {
		err = fmt.Errorf("spool: close %s: %w", it.t.path, cerr)
	}
	return err
}
