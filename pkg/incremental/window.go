package incremental

import (
	"encoding/binary"
	"strings"

	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/event"
)

// WatermarkPrefix is the logical decoding message prefix of the incremental snapshot's
// watermarks. Messages with it are never published.
const WatermarkPrefix = "__pgcdc_incremental"

// Watermark contents: "open:<window id>" (low watermark) and "close:<window id>" (high).
const (
	markOpen  = "open:"
	markClose = "close:"
)

// window is one chunk's de-duplication window. The reader registers it before it writes the low
// watermark and attaches the chunk before it writes the high one; the pipeline opens it at the
// low watermark, collects the keys the stream changes in the table until the high watermark and
// then publishes the chunk's rows whose key the stream did not change.
type window struct {
	id       string
	table    string   // schema.table
	keyNames []string // the de-duplication key: the event key's columns, or the chunk key's for a table without one

	opened    bool
	mark      uint64              // the ring position at the low watermark
	changed   map[string]struct{} // keys changed in the stream since the low watermark
	truncated bool                // the table was truncated since the low watermark
	unknown   bool                // a change of the table whose key could not be read
	cancelled bool                // stop-snapshot: publish nothing

	chunk *chunk // attached by the reader before the high watermark
}

// chunk is what the reader read for a window.
type chunk struct {
	rel   *decode.Relation
	rows  [][][]byte // values in rel's column order (nil: NULL), text format
	keys  []string   // de-duplication key of each row (keyOf)
	last  []string   // the chunk key of the last row (text), the next chunk's lower bound
	short bool       // fewer rows than asked: the table's last chunk
	// invisible tells the transactions the chunk's snapshot did not see.
	invisible invisible
}

// invisible is what a snapshot does not see: the transactions it lists as running, and every one
// from xmax on.
type invisible struct {
	xmax    uint32
	running map[uint32]bool
}

// has reports whether the snapshot does not see transaction xid (xids compare modulo 2^32).
func (v invisible) has(xid uint32) bool { return v.running[xid] || int32(xid-v.xmax) >= 0 }

// verdict is the pipeline's answer to a window, sent to the reader.
type verdict struct {
	id        string
	published int64
	dropped   int64
	redo      bool   // a transaction the chunk's snapshot did not see was streamed before the low watermark
	racer     uint32 // that transaction
	cancelled bool
	txn       uint64 // the tracker transaction of the published rows
}

// keyOf appends the de-duplication key of row (columns cols) to buf: per column 0 for NULL, or 1,
// the length and the text. ok is false when a column's value is not in the row (unchanged TOAST,
// or absent); null tells whether a column is NULL.
func keyOf(buf []byte, row []event.Datum, cols []int) (_ []byte, ok, null bool) {
	for _, i := range cols {
		if i >= len(row) {
			return buf, false, null
		}
		switch d := row[i]; d.Kind {
		case event.DatumNull:
			buf, null = append(buf, 0), true
		case event.DatumText:
			buf = append(buf, 1)
			buf = binary.AppendUvarint(buf, uint64(len(d.Text)))
			buf = append(buf, d.Text...)
		default:
			return buf, false, null
		}
	}
	return buf, true, null
}

// keyOfValues is keyOf for a row of text values (nil: NULL), as the chunk reader has them.
func keyOfValues(buf []byte, vals [][]byte, cols []int) []byte {
	for _, i := range cols {
		if vals[i] == nil {
			buf = append(buf, 0)
			continue
		}
		buf = append(buf, 1)
		buf = binary.AppendUvarint(buf, uint64(len(vals[i])))
		buf = append(buf, vals[i]...)
	}
	return buf
}

// ringSize is how many (transaction, table) pairs of committed transactions the pipeline
// remembers: enough to tell whether a transaction a chunk's snapshot saw running had already been
// streamed before the low watermark (see the package doc, "The race").
const ringSize = 1 << 16

// ring remembers the (xid, table) pairs of the last ringSize committed transactions' changes.
type ring struct {
	entries []ringEntry
	total   uint64 // pairs pushed so far: the position of the next one
}

type ringEntry struct {
	xid   uint32
	table string
}

func (r *ring) push(xid uint32, table string) {
	if r.entries == nil {
		r.entries = make([]ringEntry, ringSize)
	}
	r.entries[r.total%ringSize] = ringEntry{xid: xid, table: table}
	r.total++
}

// before returns a transaction the snapshot did not see that changed table and was pushed before
// position mark, if any is still remembered.
func (r *ring) before(mark uint64, table string, inv invisible) (uint32, bool) {
	if r.entries == nil {
		return 0, false
	}
	from := uint64(0)
	if mark > ringSize {
		from = mark - ringSize
	}
	if r.total > ringSize && r.total-ringSize > from {
		from = r.total - ringSize // overwritten since
	}
	for p := from; p < mark; p++ {
		e := r.entries[p%ringSize]
		if e.table == table && inv.has(e.xid) {
			return e.xid, true
		}
	}
	return 0, false
}

// parseWatermark splits a watermark's content into its kind (markOpen or markClose) and window id.
func parseWatermark(content []byte) (kind, id string, ok bool) {
	s := string(content)
	switch {
	case strings.HasPrefix(s, markOpen):
		return markOpen, s[len(markOpen):], true
	case strings.HasPrefix(s, markClose):
		return markClose, s[len(markClose):], true
	}
	return "", "", false
}
