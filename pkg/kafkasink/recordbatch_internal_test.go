package kafkasink

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go/compress"
	"github.com/segmentio/kafka-go/protocol"
)

func recs(rs ...Record) []queued {
	out := make([]queued, len(rs))
	for i, r := range rs {
		out[i] = queued{rec: r}
	}
	return out
}

// decodeWithKafkaGo reads buf (a size-prefixed record set) with kafka-go's decoder, which checks the
// CRC-32C and decompresses.
func decodeWithKafkaGo(t *testing.T, buf []byte) (*protocol.RecordBatch, []Record) {
	t.Helper()
	var rs protocol.RecordSet
	n, err := rs.ReadFrom(bufio.NewReader(bytes.NewReader(buf)))
	if err != nil {
		t.Fatalf("kafka-go cannot read the batch: %v", err)
	}
	if n != int64(len(buf)) {
		t.Fatalf("kafka-go read %d of %d bytes", n, len(buf))
	}
	if rs.Version != 2 {
		t.Fatalf("record set version %d, want 2", rs.Version)
	}
	stream, ok := rs.Records.(*protocol.RecordStream)
	if !ok || len(stream.Records) != 1 {
		t.Fatalf("records %T, want a stream of one batch", rs.Records)
	}
	rb, ok := stream.Records[0].(*protocol.RecordBatch)
	if !ok {
		t.Fatalf("batch %T, want *protocol.RecordBatch", stream.Records[0])
	}
	var out []Record
	for i := 0; ; i++ {
		r, err := rb.ReadRecord()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.Offset != int64(i) {
			t.Fatalf("record %d has offset %d", i, r.Offset)
		}
		key, _ := protocol.ReadAll(r.Key)
		value, _ := protocol.ReadAll(r.Value)
		rec := Record{Key: key, Value: value}
		for _, h := range r.Headers {
			rec.Headers = append(rec.Headers, Header{Key: h.Key, Value: h.Value})
		}
		out = append(out, rec)
	}
	return rb, out
}

// decodeByHand reads the records of an uncompressed batch field by field, independently of kafka-go,
// keeping null (-1) apart from empty.
func decodeByHand(t *testing.T, b []byte) []Record {
	t.Helper()
	pos := 0
	varint := func() int64 {
		v, n := binary.Varint(b[pos:])
		if n <= 0 {
			t.Fatalf("bad varint at %d", pos)
		}
		pos += n
		return v
	}
	nullable := func() []byte {
		n := varint()
		if n < 0 {
			return nil
		}
		v := b[pos : pos+int(n) : pos+int(n)]
		pos += int(n)
		return v
	}
	var out []Record
	for i := 0; pos < len(b); i++ {
		length := varint()
		start := pos
		if b[pos] != 0 {
			t.Fatalf("record %d: attributes %d, want 0", i, b[pos])
		}
		pos++
		if d := varint(); d != 0 {
			t.Fatalf("record %d: timestamp delta %d, want 0", i, d)
		}
		if d := varint(); d != int64(i) {
			t.Fatalf("record %d: offset delta %d", i, d)
		}
		r := Record{Key: nullable(), Value: nullable()}
		for n := varint(); n > 0; n-- {
			k := nullable()
			r.Headers = append(r.Headers, Header{Key: string(k), Value: nullable()})
		}
		if pos-start != int(length) {
			t.Fatalf("record %d: length %d, but its fields take %d bytes", i, length, pos-start)
		}
		out = append(out, r)
	}
	return out
}

func TestEncodeRecordBatch(t *testing.T) {
	big := bytes.Repeat([]byte(`{"id":1,"name":"a row long enough to compress"}`), 40)
	many := make([]Record, 300)
	for i := range many {
		many[i] = Record{Key: []byte(fmt.Sprintf(`{"id":%d}`, i)), Value: append([]byte(fmt.Sprintf("v%d:", i)), big[:i]...)}
	}
	cases := []struct {
		name string
		recs []Record
	}{
		{"one record", []Record{{Key: []byte(`{"id":1}`), Value: []byte(`{"after":{"id":1}}`)}}},
		{"many records", many},
		{"null key", []Record{{Key: nil, Value: []byte("v")}}},
		{"tombstone", []Record{{Key: []byte("k"), Value: nil}}},
		{"empty key and value are not null", []Record{{Key: []byte{}, Value: []byte{}}}},
		{"headers", []Record{
			{Key: []byte("k1"), Value: []byte("v1"), Headers: []Header{{Key: "__op", Value: []byte("c")}, {Key: "trace", Value: nil}, {Key: "", Value: []byte{}}}},
			{Key: []byte("k2"), Value: big, Headers: []Header{{Key: strings.Repeat("h", 200), Value: big}}},
		}},
	}
	codecs := []string{"none", "gzip", "snappy", "lz4", "zstd"}
	for _, c := range cases {
		for _, codecName := range codecs {
			t.Run(c.name+"/"+codecName, func(t *testing.T) {
				codec := compressions[codecName]
				enc := newBatchEncoder(codec)
				h := batchHeader{producerID: 0x0102030405060708, producerEpoch: 0x1234, baseSequence: 0x7ffffff0, timestamp: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC).UnixMilli()}
				// Encode twice with the same encoder: the reused buffers must not leak the first batch.
				if _, err := enc.encode(recs(many[:7]...), batchHeader{}); err != nil {
					t.Fatal(err)
				}
				buf, err := enc.encode(recs(c.recs...), h)
				if err != nil {
					t.Fatal(err)
				}
				checkBatchHeader(t, buf, h, codec, len(c.recs))

				rb, got := decodeWithKafkaGo(t, buf)
				if rb.ProducerID != h.producerID || rb.ProducerEpoch != h.producerEpoch || rb.BaseSequence != h.baseSequence {
					t.Errorf("kafka-go reads producer %d epoch %d sequence %d, want %d %d %d", rb.ProducerID, rb.ProducerEpoch, rb.BaseSequence, h.producerID, h.producerEpoch, h.baseSequence)
				}
				if rb.Attributes.Compression() != codec || rb.Attributes.Transactional() || rb.Attributes.Control() {
					t.Errorf("kafka-go reads attributes %s, want %s only", rb.Attributes, codec)
				}
				if rb.PartitionLeaderEpoch != -1 || rb.BaseOffset != 0 {
					t.Errorf("leader epoch %d, base offset %d; want -1, 0", rb.PartitionLeaderEpoch, rb.BaseOffset)
				}
				compareRecords(t, "kafka-go", got, c.recs, false)
				if codec == 0 {
					compareRecords(t, "by hand", decodeByHand(t, buf[sizePrefix+batchHeaderSize:]), c.recs, true)
				}

				// A flipped bit in a header field the CRC covers (the producer id), or in the last
				// record byte, is detected (a compressed batch's codec may notice the latter first).
				for _, at := range []int{sizePrefix + offProducerID + 7, len(buf) - 1} {
					bad := bytes.Clone(buf)
					bad[at] ^= 0x01
					var rs protocol.RecordSet
					_, err := rs.ReadFrom(bufio.NewReader(bytes.NewReader(bad)))
					if err == nil || (codec == 0 || at < sizePrefix+batchHeaderSize) && !strings.Contains(err.Error(), "crc32 checksum mismatch") {
						t.Errorf("a batch corrupted at byte %d decoded without a CRC error: %v", at, err)
					}
				}
			})
		}
	}
}

// checkBatchHeader reads the fixed header fields at their offsets.
func checkBatchHeader(t *testing.T, buf []byte, h batchHeader, codec compress.Compression, n int) {
	t.Helper()
	be := binary.BigEndian
	if got := be.Uint32(buf); int(got) != len(buf)-sizePrefix {
		t.Fatalf("size prefix %d, want %d", got, len(buf)-sizePrefix)
	}
	b := buf[sizePrefix:]
	checks := []struct {
		field     string
		got, want int64
	}{
		{"base offset", int64(be.Uint64(b[0:])), 0},
		{"batch length", int64(int32(be.Uint32(b[8:]))), int64(len(b) - 12)},
		{"partition leader epoch", int64(int32(be.Uint32(b[12:]))), -1},
		{"magic", int64(b[16]), 2},
		{"crc", int64(be.Uint32(b[17:])), int64(crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))},
		{"attributes", int64(int16(be.Uint16(b[21:]))), int64(codec)},
		{"last offset delta", int64(int32(be.Uint32(b[23:]))), int64(n - 1)},
		{"first timestamp", int64(be.Uint64(b[27:])), h.timestamp},
		{"max timestamp", int64(be.Uint64(b[35:])), h.timestamp},
		{"producer id", int64(be.Uint64(b[43:])), h.producerID},
		{"producer epoch", int64(int16(be.Uint16(b[51:]))), int64(h.producerEpoch)},
		{"base sequence", int64(int32(be.Uint32(b[53:]))), int64(h.baseSequence)},
		{"record count", int64(int32(be.Uint32(b[57:]))), int64(n)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.field, c.got, c.want)
		}
	}
}

func compareRecords(t *testing.T, how string, got, want []Record, nulls bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", how, len(got), len(want))
	}
	same := func(a, b []byte) bool { return bytes.Equal(a, b) && (!nulls || (a == nil) == (b == nil)) }
	for i := range want {
		g, w := got[i], want[i]
		if !same(g.Key, w.Key) || !same(g.Value, w.Value) || (g.Key == nil) != (w.Key == nil) || (g.Value == nil) != (w.Value == nil) {
			t.Fatalf("%s: record %d key %q value %.40q, want %q %.40q (nil %v %v, want %v %v)", how, i, g.Key, g.Value, w.Key, w.Value, g.Key == nil, g.Value == nil, w.Key == nil, w.Value == nil)
		}
		if len(g.Headers) != len(w.Headers) {
			t.Fatalf("%s: record %d has %d headers, want %d", how, i, len(g.Headers), len(w.Headers))
		}
		for j := range w.Headers {
			if g.Headers[j].Key != w.Headers[j].Key || !same(g.Headers[j].Value, w.Headers[j].Value) {
				t.Fatalf("%s: record %d header %d = %q:%.20q, want %q:%.20q", how, i, j, g.Headers[j].Key, g.Headers[j].Value, w.Headers[j].Key, w.Headers[j].Value)
			}
		}
	}
}

func TestNextSequenceWraps(t *testing.T) {
	cases := []struct {
		seq  int32
		n    int
		want int32
	}{
		{0, 1, 1},
		{5, 10, 15},
		{math.MaxInt32 - 10, 10, math.MaxInt32},
		{math.MaxInt32 - 10, 11, 0},
		{math.MaxInt32 - 10, 15, 4},
		{math.MaxInt32, 1, 0},
		{math.MaxInt32, 100, 99},
	}
	for _, c := range cases {
		if got := nextSequence(c.seq, c.n); got != c.want {
			t.Errorf("nextSequence(%d, %d) = %d, want %d", c.seq, c.n, got, c.want)
		}
	}
}

func TestVarintSize(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 63, 64, -64, -65, 127, 128, 8191, 8192, 1 << 20, math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64} {
		if got, want := varintSize(v), len(binary.AppendVarint(nil, v)); got != want {
			t.Errorf("varintSize(%d) = %d, want %d", v, got, want)
		}
	}
}

// TestPlainBatch checks the batch of a producer without a producer id (kafka.transactional_id
// unset): producer id, epoch and base sequence -1, read so by kafka-go, and lz4 frames with 64 KiB
// blocks (the frame descriptor's block size index 4) and no content checksum, which kafka-go reads
// back. A record's shared
// value prefix is written in front of its value.
func TestPlainBatch(t *testing.T) {
	now := time.Date(2026, 12, 7, 17, 0, 0, 0, time.UTC)
	big := bytes.Repeat([]byte(`{"schema":{"type":"struct","fields":[]},"payload":{"id":1}}`), 2000) // 120 KB: two blocks and more
	sent := []Record{
		{Key: []byte("k"), Value: big},
		{Key: []byte("k2"), Value: []byte("v")},
		{Key: []byte("k3"), ValuePrefix: big[:300], Value: []byte(`{"id":3}}`)},
		{Key: []byte("k4"), ValuePrefix: big[:300], Value: []byte{}},
		{Key: []byte("k5"), ValuePrefix: big[:300], Value: nil}, // a tombstone stays null
	}
	want := make([]Record, len(sent))
	for i, r := range sent {
		want[i] = Record{Key: r.Key, Value: r.FullValue()}
	}
	if string(want[2].Value) != string(big[:300])+`{"id":3}}` || want[4].Value != nil {
		t.Fatalf("FullValue: %q, %q", want[2].Value, want[4].Value)
	}
	for _, codec := range []compress.Compression{0, compress.Lz4} {
		enc := newBatchEncoder(codec)
		h := plainBatch(now)
		buf, err := enc.encode(recs(sent...), h)
		if err != nil {
			t.Fatal(err)
		}
		checkBatchHeader(t, buf, batchHeader{producerID: -1, producerEpoch: -1, baseSequence: -1, timestamp: now.UnixMilli()}, codec, len(want))
		rb, got := decodeWithKafkaGo(t, buf)
		if rb.ProducerID != -1 || rb.ProducerEpoch != -1 || rb.BaseSequence != -1 {
			t.Errorf("%s: kafka-go reads producer %d epoch %d sequence %d, want -1 -1 -1", codec, rb.ProducerID, rb.ProducerEpoch, rb.BaseSequence)
		}
		compareRecords(t, codec.String(), got, want, false)
		if codec == 0 {
			compareRecords(t, "by hand", decodeByHand(t, buf[sizePrefix+batchHeaderSize:]), want, true)
		}
		if codec == compress.Lz4 {
			frame := buf[sizePrefix+batchHeaderSize:]
			if m := binary.LittleEndian.Uint32(frame); m != 0x184D2204 {
				t.Fatalf("lz4 frame magic %#x", m)
			}
			if bd := frame[5]; bd>>4&7 != 4 {
				t.Errorf("lz4 block size index %d, want 4 (64 KiB)", bd>>4&7)
			}
			if flg := frame[4]; flg&0x04 != 0 {
				t.Errorf("lz4 frame flags %#x: a content checksum, want none (the batch's CRC covers it)", flg)
			}
			if len(frame) > len(big)/4 {
				t.Errorf("lz4 frame of %d bytes for %d bytes of repetitive records", len(frame), len(big))
			}
		}
	}
}

// recordsSize is the exact length appendRecords writes, so encode sizes its buffer once.
func TestRecordsSize(t *testing.T) {
	big := bytes.Repeat([]byte("v"), 300)
	for _, c := range []struct {
		name  string
		batch []queued
	}{
		{"one record", []queued{{rec: Record{Key: []byte("k"), Value: []byte("v")}}}},
		{"null key and tombstone", []queued{{rec: Record{}}, {rec: Record{Key: []byte("k")}}}},
		{"shared prefix and headers", []queued{{rec: Record{Key: []byte("k"), ValuePrefix: big, Value: big,
			Headers: []Header{{Key: "h", Value: []byte("x")}, {Key: "n"}}}}}},
		{"long values and many offsets", func() []queued {
			var b []queued
			for i := range 200 {
				b = append(b, queued{rec: Record{Key: big[:i], Value: bytes.Repeat(big, i%5)}})
			}
			return b
		}()},
	} {
		if got, want := recordsSize(c.batch), len(appendRecords(nil, c.batch)); got != want {
			t.Errorf("%s: recordsSize %d, appendRecords wrote %d", c.name, got, want)
		}
	}
}

// The pool keeps its idle encoders, and their buffers, across garbage collections, up to
// idleEncoders of them.
func TestEncoderPoolOutlivesCollections(t *testing.T) {
	p := newEncoderPool(compress.Lz4)
	var encs []*batchEncoder
	for range idleEncoders + 1 {
		encs = append(encs, p.get())
	}
	for _, e := range encs {
		p.put(e)
	}
	runtime.GC()
	runtime.GC()
	kept := map[*batchEncoder]bool{}
	for range idleEncoders {
		kept[p.get()] = true
	}
	for _, e := range encs[:idleEncoders] {
		if !kept[e] {
			t.Fatal("an idle encoder was dropped by a collection")
		}
	}
	if e := p.get(); e == encs[idleEncoders] {
		t.Fatal("the pool kept more than idleEncoders idle encoders")
	}
}
