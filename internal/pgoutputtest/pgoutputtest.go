// Package pgoutputtest builds pgoutput protocol messages (logical replication protocol versions 1
// and 2, as PostgreSQL's pgoutput plugin writes them) for tests of the stages that read them,
// without a server.
package pgoutputtest

import (
	"encoding/binary"
	"time"
)

// pgEpoch is PostgreSQL's epoch for timestamps (microseconds since 2000-01-01 UTC).
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func u8(b []byte, v byte) []byte    { return append(b, v) }
func u16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func u32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func u64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }
func str(b []byte, s string) []byte { return append(append(b, s...), 0) }
func ts(b []byte, t time.Time) []byte {
	return u64(b, uint64(t.Sub(pgEpoch).Microseconds()))
}

// Col describes a column of a Relation message.
type Col struct {
	Name    string
	OID     uint32
	TypeMod int32
	Key     bool // the replica identity flag
}

// Value is a column of a tuple: Null, Unchanged (TOAST not in the WAL) or text.
type Value struct {
	Kind byte // 'n', 'u' or 't'
	Text string
}

// Text, Null and Unchanged are the tuple column kinds.
func Text(s string) Value { return Value{Kind: 't', Text: s} }

var (
	Null      = Value{Kind: 'n'}
	Unchanged = Value{Kind: 'u'}
)

// Texts makes a tuple of text values.
func Texts(vals ...string) []Value {
	out := make([]Value, len(vals))
	for i, v := range vals {
		out[i] = Text(v)
	}
	return out
}

func tuple(b []byte, vals []Value) []byte {
	b = u16(b, uint16(len(vals)))
	for _, v := range vals {
		b = u8(b, v.Kind)
		if v.Kind == 't' {
			b = u32(b, uint32(len(v.Text)))
			b = append(b, v.Text...)
		}
	}
	return b
}

// xid prefixes the message with the (sub)transaction id inside a stream block (protocol 2).
func withXid(b []byte, streamXid uint32) []byte {
	if streamXid != 0 {
		b = u32(b, streamXid)
	}
	return b
}

// Begin is 'B': final LSN, commit time, xid.
func Begin(finalLSN uint64, commitTime time.Time, xid uint32) []byte {
	return u32(ts(u64([]byte{'B'}, finalLSN), commitTime), xid)
}

// Commit is 'C': flags, commit LSN, end LSN, commit time.
func Commit(commitLSN, endLSN uint64, commitTime time.Time) []byte {
	return ts(u64(u64(u8([]byte{'C'}, 0), commitLSN), endLSN), commitTime)
}

// Relation is 'R' (streamXid != 0: inside a stream block).
func Relation(streamXid, relID uint32, schema, name string, identity byte, cols ...Col) []byte {
	b := withXid([]byte{'R'}, streamXid)
	b = str(str(u32(b, relID), schema), name)
	b = u16(u8(b, identity), uint16(len(cols)))
	for _, c := range cols {
		var flags byte
		if c.Key {
			flags = 1
		}
		b = u32(u32(str(u8(b, flags), c.Name), c.OID), uint32(c.TypeMod))
	}
	return b
}

// Insert is 'I' with a new tuple.
func Insert(streamXid, relID uint32, vals []Value) []byte {
	return tuple(u8(u32(withXid([]byte{'I'}, streamXid), relID), 'N'), vals)
}

// Update is 'U': old is nil (no old tuple), or the old tuple of kind oldKind ('K' key, 'O' full row).
func Update(streamXid, relID uint32, oldKind byte, old, new []Value) []byte {
	b := u32(withXid([]byte{'U'}, streamXid), relID)
	if old != nil {
		b = tuple(u8(b, oldKind), old)
	}
	return tuple(u8(b, 'N'), new)
}

// Delete is 'D' with the old tuple of kind oldKind ('K' or 'O').
func Delete(streamXid, relID uint32, oldKind byte, old []Value) []byte {
	return tuple(u8(u32(withXid([]byte{'D'}, streamXid), relID), oldKind), old)
}

// Truncate is 'T'.
func Truncate(streamXid uint32, relIDs ...uint32) []byte {
	b := u8(u32(withXid([]byte{'T'}, streamXid), uint32(len(relIDs))), 0)
	for _, id := range relIDs {
		b = u32(b, id)
	}
	return b
}

// Message is 'M', a logical decoding message.
func Message(streamXid uint32, transactional bool, lsn uint64, prefix string, content []byte) []byte {
	var flags byte
	if transactional {
		flags = 1
	}
	b := str(u64(u8(withXid([]byte{'M'}, streamXid), flags), lsn), prefix)
	return append(u32(b, uint32(len(content))), content...)
}

// StreamStart is 'S' (protocol 2).
func StreamStart(xid uint32, first bool) []byte {
	var f byte
	if first {
		f = 1
	}
	return u8(u32([]byte{'S'}, xid), f)
}

// StreamStop is 'E'.
func StreamStop() []byte { return []byte{'E'} }

// StreamCommit is 'c'.
func StreamCommit(xid uint32, commitLSN, endLSN uint64, commitTime time.Time) []byte {
	return ts(u64(u64(u8(u32([]byte{'c'}, xid), 0), commitLSN), endLSN), commitTime)
}

// StreamAbort is 'A'.
func StreamAbort(xid, subxid uint32) []byte { return u32(u32([]byte{'A'}, xid), subxid) }
