package decode

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pgcdc/pgcdc/pkg/event"
)

// The row messages (insert, update, delete) are most of a stream, and pglogrepl's parser allocates
// a column struct and a copy of every value for each of them (plus the message and tuple structs):
// a fifth of pgcdc's allocations. Outside a stream block they are read here straight into the
// decoder's reused datum buffers, each value aliasing the message's bytes, which the decoder's
// caller hands over and does not reuse (a spooled message is read by pglogrepl, as its spool's
// buffer is reused).

// errMalformed reports a row message that ends early or has an unknown part.
var errMalformed = errors.New("malformed row message")

// errBinaryColumn reports a column in binary transfer format, which pgcdc never requests.
type errBinaryColumn int

func (e errBinaryColumn) Error() string {
	return fmt.Sprintf("decode: column %d has tuple data kind 'b' (binary transfer is not requested)", int(e))
}

// rowMessage is a parsed insert ('I'), update ('U') or delete ('D') message of protocol 1 (or of
// protocol 2 outside a stream block, which is the same).
type rowMessage struct {
	relID         uint32
	before, after []event.Datum // nil when the message has no such tuple
	beforeTag     byte          // 'K' (key columns only) or 'O' (the old row); 0 without a before
}

// parseRowMessage parses data (its first byte 'I', 'U' or 'D') into m, reusing before and after
// for the datums.
func parseRowMessage(data []byte, before, after []event.Datum) (m rowMessage, err error) {
	if len(data) < 6 {
		return m, errMalformed
	}
	m.relID = binary.BigEndian.Uint32(data[1:5])
	p := 5
	if data[0] != 'I' && (data[p] == 'K' || data[p] == 'O') {
		m.beforeTag = data[p]
		if m.before, p, err = parseTuple(before[:0], data, p+1); err != nil {
			return m, err
		}
	}
	switch data[0] {
	case 'I', 'U':
		if p >= len(data) || data[p] != 'N' {
			return m, errMalformed
		}
		m.after, _, err = parseTuple(after[:0], data, p+1)
	case 'D':
		if m.beforeTag == 0 {
			return m, errMalformed
		}
	default:
		return m, errMalformed
	}
	return m, err
}

// parseTuple appends the datums of the TupleData at data[p:] to dst and returns the position after
// it.
func parseTuple(dst []event.Datum, data []byte, p int) ([]event.Datum, int, error) {
	if p+2 > len(data) {
		return dst, p, errMalformed
	}
	n := int(binary.BigEndian.Uint16(data[p:]))
	p += 2
	if dst == nil {
		dst = make([]event.Datum, 0, n) // never nil: a nil tuple means "absent"
	}
	for i := range n {
		if p >= len(data) {
			return dst, p, errMalformed
		}
		kind := data[p]
		p++
		switch kind {
		case 'n':
			dst = append(dst, event.Datum{Kind: event.DatumNull})
		case 'u':
			dst = append(dst, event.Datum{Kind: event.DatumUnchanged})
		case 't', 'b':
			if p+4 > len(data) {
				return dst, p, errMalformed
			}
			l := int(binary.BigEndian.Uint32(data[p:]))
			p += 4
			if l < 0 || l > len(data)-p {
				return dst, p, errMalformed
			}
			if kind == 'b' {
				return dst, p, errBinaryColumn(i)
			}
			dst = append(dst, event.Datum{Kind: event.DatumText, Text: data[p : p+l : p+l]})
			p += l
		default:
			return dst, p, errMalformed
		}
	}
	return dst, p, nil
}
