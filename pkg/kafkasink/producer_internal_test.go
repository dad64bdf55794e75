package kafkasink

import (
	"errors"
	"io"
	"testing"
)

// TestBatchRecords checks that a batch reads as kafka-go records in order, with null keys and
// values (tombstones) kept null and the headers as given.
func TestBatchRecords(t *testing.T) {
	batch := []queued{
		{rec: Record{Key: []byte("k1"), Value: []byte("v1"), Headers: []Header{{Key: "h", Value: []byte("1")}}}},
		{rec: Record{Key: nil, Value: []byte("v2")}},
		{rec: Record{Key: []byte("k3"), Value: nil}},
		{rec: Record{Key: []byte{}, Value: []byte{}}},
	}
	type want struct {
		key, value []byte // nil: null
		headers    int
	}
	wants := []want{
		{[]byte("k1"), []byte("v1"), 1},
		{nil, []byte("v2"), 0},
		{[]byte("k3"), nil, 0},
		{[]byte{}, []byte{}, 0},
	}
	r := &batchRecords{batch: batch}
	for i, w := range wants {
		rec, err := r.ReadRecord()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		for _, f := range []struct {
			name string
			got  interface {
				io.Reader
				Len() int
			}
			isNil bool
			want  []byte
		}{{"key", rec.Key, rec.Key == nil, w.key}, {"value", rec.Value, rec.Value == nil, w.value}} {
			if f.isNil != (f.want == nil) {
				t.Fatalf("record %d %s: null %v, want null %v", i, f.name, f.isNil, f.want == nil)
			}
			if f.isNil {
				continue
			}
			if f.got.Len() != len(f.want) {
				t.Fatalf("record %d %s: Len %d, want %d", i, f.name, f.got.Len(), len(f.want))
			}
			b, err := io.ReadAll(f.got)
			if err != nil || string(b) != string(f.want) {
				t.Fatalf("record %d %s: %q, %v; want %q", i, f.name, b, err, f.want)
			}
		}
		if len(rec.Headers) != w.headers {
			t.Fatalf("record %d: %d headers, want %d", i, len(rec.Headers), w.headers)
		}
		if w.headers > 0 && (rec.Headers[0].Key != "h" || string(rec.Headers[0].Value) != "1") {
			t.Fatalf("record %d: header %+v", i, rec.Headers[0])
		}
	}
	if _, err := r.ReadRecord(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the batch: %v, want io.EOF", err)
	}
}
