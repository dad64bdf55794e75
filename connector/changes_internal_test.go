package connector

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/jackc/pglogrepl"

	"github.com/pgcdc/pgcdc/pkg/event"
)

func txt(s string) event.Datum { return event.Datum{Kind: event.DatumText, Text: []byte(s)} }

var (
	null   = event.Datum{Kind: event.DatumNull}
	toast  = event.Datum{Kind: event.DatumUnchanged}
	absent = event.Datum{Kind: event.DatumAbsent}
)

func TestKeyChanged(t *testing.T) {
	cases := []struct {
		name          string
		key           []int
		before, after []event.Datum
		want          bool
	}{
		{"same key, other column changed", []int{0}, []event.Datum{txt("1"), txt("a")}, []event.Datum{txt("1"), txt("b")}, false},
		{"key changed", []int{0}, []event.Datum{txt("1"), txt("a")}, []event.Datum{txt("2"), txt("a")}, true},
		{"key in a later column changed", []int{1}, []event.Datum{txt("x"), txt("1")}, []event.Datum{txt("x"), txt("10")}, true},
		{"composite key, second part changed", []int{0, 2}, []event.Datum{txt("1"), txt("a"), txt("p")}, []event.Datum{txt("1"), txt("a"), txt("q")}, true},
		{"composite key same", []int{2, 0}, []event.Datum{txt("1"), txt("a"), txt("p")}, []event.Datum{txt("1"), txt("b"), txt("p")}, false},
		{"prefix is not equality", []int{0}, []event.Datum{txt("1")}, []event.Datum{txt("11")}, true},
		{"empty text is not null", []int{0}, []event.Datum{null}, []event.Datum{txt("")}, true},
		{"null to null", []int{0}, []event.Datum{null}, []event.Datum{null}, false},
		{"unchanged TOAST key column ignored", []int{0, 1}, []event.Datum{txt("1"), txt("long")}, []event.Datum{txt("1"), toast}, false},
		{"unchanged TOAST ignored, other key part changed", []int{0, 1}, []event.Datum{txt("1"), txt("long")}, []event.Datum{txt("2"), toast}, true},
		{"absent vs text", []int{0}, []event.Datum{absent}, []event.Datum{txt("1")}, true},
		{"no key columns", nil, []event.Datum{txt("1")}, []event.Datum{txt("2")}, false},
		{"after shorter than key index", []int{2}, []event.Datum{txt("1"), txt("2"), txt("3")}, []event.Datum{txt("1"), txt("2")}, true},
		{"before shorter than key index", []int{1}, []event.Datum{txt("1")}, []event.Datum{txt("1"), txt("2")}, true},
		{"both empty", []int{0}, nil, nil, true},
		{"length mismatch outside the key", []int{0}, []event.Datum{txt("1")}, []event.Datum{txt("1"), txt("extra")}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := keyChanged(c.key, c.before, c.after); got != c.want {
				t.Errorf("keyChanged(%v) = %v, want %v", c.key, got, c.want)
			}
		})
	}
}

// Encoders of pgoutput messages (protocol 1), enough to build valid and broken inputs.
func u16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func u32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

// insertMsg is 'I' relid 'N' ncols, then for each column 't' len data.
func insertMsg(relID uint32, cols ...string) []byte {
	b := u32([]byte{'I'}, relID)
	b = append(b, 'N')
	b = u16(b, uint16(len(cols)))
	for _, c := range cols {
		b = append(b, 't')
		b = u32(b, uint32(len(c)))
		b = append(b, c...)
	}
	return b
}

func TestParseMessage(t *testing.T) {
	valid := insertMsg(16400, "1", "ada")
	msg, err := parseMessage(valid, false)
	if err != nil {
		t.Fatalf("valid insert: %v", err)
	}
	ins2, ok := msg.(*pglogrepl.InsertMessageV2) // ParseV2 returns the V2 types, as apply expects
	if !ok {
		t.Fatalf("valid insert parsed as %T", msg)
	}
	ins := &ins2.InsertMessage
	if ins.RelationID != 16400 || len(ins.Tuple.Columns) != 2 || string(ins.Tuple.Columns[1].Data) != "ada" {
		t.Fatalf("valid insert parsed as %+v", ins)
	}

	// A tuple whose column claims more bytes than the message has: pglogrepl's TupleData.Decode
	// indexes past the end (it does no bounds checking) and panics.
	overlong := u32([]byte{'I'}, 16400)
	overlong = append(overlong, 'N')
	overlong = u16(overlong, 1)
	overlong = append(overlong, 't')
	overlong = u32(overlong, 100)
	overlong = append(overlong, "ab"...)

	// A tuple that announces more columns than it carries.
	missingCols := insertMsg(16400, "1")
	binary.BigEndian.PutUint16(missingCols[6:], 3)

	cases := []struct {
		name     string
		data     []byte
		inStream bool
		want     []string
	}{
		{"empty", nil, false, []string{"empty message"}},
		{"truncated insert", []byte{'I', 0, 0}, false, nil},
		{"insert without tuple", u32([]byte{'I'}, 16400), false, nil},
		{"insert with bad tuple type", append(u32([]byte{'I'}, 16400), 'X', 0, 0, 0), false, nil},
		{"column longer than the message", overlong, false, []string{"malformed message", `'I'`}},
		{"more columns announced than sent", missingCols, false, []string{"malformed message"}},
		{"truncated update", []byte{'U', 0, 0, 0x40, 0x10, 'N'}, false, nil},
		{"truncated delete", []byte{'D', 0, 0}, false, nil},
		{"truncated relation", []byte{'R', 0, 0, 0x40}, false, nil},
		{"truncated begin", []byte{'B', 0, 0, 0, 0}, false, nil},
		{"truncated commit", []byte{'C', 0}, false, nil},
		{"truncated truncate", []byte{'T', 0}, false, nil},
		{"truncated stream start", []byte{'S', 0}, false, nil},
		{"truncated insert in a stream", []byte{'I', 0, 0, 0, 1, 0}, true, nil},
		{"unknown message type", []byte{'Z', 1, 2, 3}, false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var msg pglogrepl.Message
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("parseMessage panicked: %v", r)
					}
				}()
				msg, err = parseMessage(c.data, c.inStream)
			}()
			if err == nil {
				t.Fatalf("no error; parsed %#v", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
