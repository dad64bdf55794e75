package decode

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/jackc/pglogrepl"

	pg "github.com/pgcdc/pgcdc/internal/pgoutputtest"
	"github.com/pgcdc/pgcdc/pkg/event"
)

// viaPglogrepl is what the pglogrepl path makes of a row message: the reference for parseRowMessage.
func viaPglogrepl(t *testing.T, data []byte) rowMessage {
	t.Helper()
	msg, err := Parse(data, false)
	if err != nil {
		t.Fatal(err)
	}
	var m rowMessage
	switch x := msg.(type) {
	case *pglogrepl.InsertMessageV2:
		msg = &x.InsertMessage
	case *pglogrepl.UpdateMessageV2:
		msg = &x.UpdateMessage
	case *pglogrepl.DeleteMessageV2:
		msg = &x.DeleteMessage
	}
	switch x := msg.(type) {
	case *pglogrepl.InsertMessage:
		m.relID = x.RelationID
		m.after, err = Row(nil, x.Tuple)
	case *pglogrepl.UpdateMessage:
		m.relID = x.RelationID
		if x.OldTuple != nil {
			m.beforeTag = x.OldTupleType
			if m.before, err = Row(nil, x.OldTuple); err != nil {
				t.Fatal(err)
			}
		}
		m.after, err = Row(nil, x.NewTuple)
	case *pglogrepl.DeleteMessage:
		m.relID, m.beforeTag = x.RelationID, x.OldTupleType
		m.before, err = Row(nil, x.OldTuple)
	default:
		t.Fatalf("%T is not a row message", msg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseRowMessageMatchesPglogrepl(t *testing.T) {
	mixed := []pg.Value{pg.Text("1"), pg.Null, pg.Unchanged, pg.Text(""), pg.Text("x\x00y")}
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"insert", pg.Insert(0, 7, pg.Texts("1", "a"))},
		{"insert with null, unchanged and empty values", pg.Insert(0, 7, mixed)},
		{"update without the old row", pg.Update(0, 8, 0, nil, pg.Texts("1", "b"))},
		{"update with the old key", pg.Update(0, 8, 'K', pg.Texts("1"), pg.Texts("2", "b"))},
		{"update with the old row", pg.Update(0, 8, 'O', mixed, mixed)},
		{"delete by key", pg.Delete(0, 9, 'K', pg.Texts("1"))},
		{"delete of the old row", pg.Delete(0, 9, 'O', mixed)},
	} {
		got, err := parseRowMessage(c.data, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want := viaPglogrepl(t, c.data)
		if got.relID != want.relID || got.beforeTag != want.beforeTag || !sameDatums(got.before, want.before) || !sameDatums(got.after, want.after) {
			t.Errorf("%s: parsed %+v, pglogrepl %+v", c.name, got, want)
		}
	}
}

// A row of a table without columns (which pglogrepl refuses to parse) has an after tuple, empty.
func TestParseRowMessageNoColumns(t *testing.T) {
	m, err := parseRowMessage(pg.Insert(0, 7, nil), nil, nil)
	if err != nil || m.after == nil || len(m.after) != 0 || m.relID != 7 {
		t.Fatalf("parsed %+v, %v; want relation 7 and an empty after tuple", m, err)
	}
}

// sameDatums compares datums; a tuple of no columns may be empty or nil in the reference (Row).
func sameDatums(a, b []event.Datum) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// Reused buffers keep their backing arrays, and a parse never writes past a value.
func TestParseRowMessageReusesBuffers(t *testing.T) {
	before, after := make([]event.Datum, 0, 8), make([]event.Datum, 0, 8)
	m, err := parseRowMessage(pg.Update(0, 8, 'O', pg.Texts("1", "a"), pg.Texts("1", "b")), before, after)
	if err != nil {
		t.Fatal(err)
	}
	if &m.before[0] != &before[:1][0] || &m.after[0] != &after[:1][0] {
		t.Error("the datums were not written into the buffers handed in")
	}
	if got := cap(m.after[1].Text); got != 1 {
		t.Errorf("a value's capacity reaches past it (%d bytes): an append to it would overwrite the message", got)
	}
}

// Every truncation of a valid message, and every unknown part, is an error, never a panic nor a
// short row; a binary column names its position.
func TestParseRowMessageRejectsMalformed(t *testing.T) {
	for _, data := range [][]byte{
		pg.Insert(0, 7, pg.Texts("1", "abc")),
		pg.Update(0, 8, 'K', pg.Texts("1"), pg.Texts("2", "b")),
		pg.Delete(0, 9, 'O', pg.Texts("1", "x")),
	} {
		for n := range len(data) {
			if _, err := parseRowMessage(data[:n], nil, nil); !errors.Is(err, errMalformed) {
				t.Errorf("%q cut to %d of %d bytes: error %v, want a malformed message", data[0], n, len(data), err)
			}
		}
	}
	for name, data := range map[string][]byte{
		"unknown column kind":     {'I', 0, 0, 0, 7, 'N', 0, 1, 'x'},
		"length past the message": {'I', 0, 0, 0, 7, 'N', 0, 1, 't', 0, 0, 0, 9, 'a'},
		"insert without N":        {'I', 0, 0, 0, 7, 'K', 0, 0},
		"delete without old row":  {'D', 0, 0, 0, 7, 'N', 0, 0},
		"update without new row":  {'U', 0, 0, 0, 7, 'K', 0, 0},
		"update with X":           {'U', 0, 0, 0, 7, 'X', 0, 0},
		"not a row message":       {'B', 0, 0, 0, 7, 'N', 0, 0},
	} {
		if _, err := parseRowMessage(data, nil, nil); !errors.Is(err, errMalformed) {
			t.Errorf("%s: error %v, want a malformed message", name, err)
		}
	}
	bin := []byte{'I', 0, 0, 0, 7, 'N', 0, 2, 'n', 'b', 0, 0, 0, 1, 'z'}
	_, err := parseRowMessage(bin, nil, nil)
	var be errBinaryColumn
	if !errors.As(err, &be) || int(be) != 1 {
		t.Errorf("binary column: error %v, want errBinaryColumn(1)", err)
	}
	if fmt.Sprint(err) == "" {
		t.Error("empty error text")
	}
}
