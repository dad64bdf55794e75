package kafkasink

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"

	"github.com/pierrec/lz4/v4"
	"github.com/segmentio/kafka-go/compress"
)

// A Kafka record batch, format v2 (magic 2), as the broker stores it and the Produce request carries
// it (https://kafka.apache.org/documentation/#recordbatch). The offsets of its header fields, from the
// start of the batch:
const (
	offBaseOffset      = 0  // int64, 0 in a produce request
	offBatchLength     = 8  // int32, the bytes after this field
	offLeaderEpoch     = 12 // int32, -1 from a producer
	offMagic           = 16 // int8, 2
	offCRC             = 17 // uint32, CRC-32C of everything from the attributes to the end
	offAttributes      = 21 // int16: bits 0-2 compression codec, bit 4 transactional, bit 5 control
	offLastOffsetDelta = 23 // int32
	offFirstTimestamp  = 27 // int64, ms
	offMaxTimestamp    = 35 // int64, ms
	offProducerID      = 43 // int64
	offProducerEpoch   = 51 // int16
	offBaseSequence    = 53 // int32
	offRecordCount     = 57 // int32
	batchHeaderSize    = 61 // the records (compressed as a whole when a codec is set) follow
)

// sizePrefix is the int32 length that precedes the record set in a Produce request: kafka-go's
// protocol.RawRecordSet copies its Reader's bytes as they are, so they must carry it.
const sizePrefix = 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// batchHeader is what the producer decides about a batch; the encoder derives the rest.
type batchHeader struct {
	producerID    int64
	producerEpoch int16
	baseSequence  int32
	timestamp     int64 // ms since the epoch: every record's time (timestamp deltas are 0)
}

// batchEncoder encodes record batches into buffers it keeps between calls. It is used by one
// goroutine at a time (the fenced producer pools them).
type batchEncoder struct {
	codec   compress.Codec // nil: no compression
	lz4     *lz4.Writer    // lz4's compressor, kept with the encoder (codec lz4 only)
	attrs   int16          // the batch attributes: the codec, never transactional or control
	out     []byte         // size prefix + batch, returned by encode
	records []byte         // the uncompressed records when a codec is set
}

// encoderPool keeps up to a few idle batch encoders with their buffers. Unlike a sync.Pool, which
// the garbage collector empties, it keeps them across collections: a pooled encoder dropped at each
// collection regrew its buffers (up to kafka.batch_max_bytes uncompressed) batch after batch, and
// the garbage of the regrowth raised both the CPU and the peak RSS of a stream with value schemas.
type encoderPool struct {
	codec compress.Compression
	idle  chan *batchEncoder
}

// idleEncoders is how many idle encoders a pool keeps: one per partition writer that may encode at
// the same moment on two cores, and a spare; more writers share them.
const idleEncoders = 4

func newEncoderPool(c compress.Compression) *encoderPool {
	return &encoderPool{codec: c, idle: make(chan *batchEncoder, idleEncoders)}
}

func (p *encoderPool) get() *batchEncoder {
	select {
	case e := <-p.idle:
		return e
	default:
		return newBatchEncoder(p.codec)
	}
}

func (p *encoderPool) put(e *batchEncoder) {
	select {
	case p.idle <- e:
	default: // enough idle ones: left to the GC
	}
}

func newBatchEncoder(c compress.Compression) *batchEncoder {
	e := &batchEncoder{attrs: int16(c) & 7}
	if c != 0 {
		e.codec = c.Codec()
	}
	if c == compress.Lz4 {
		// 64 KiB blocks and no content checksum, as Kafka's Java producer writes lz4 frames,
		// instead of kafka-go's pooled writers with the library's defaults: 4 MiB blocks (a batch is
		// at most kafka.batch_max_bytes, 1 MiB by default, and every pooled writer's block buffers
		// stay allocated) and an xxHash of the content, 9% of pgcdc's CPU with value schemas, which
		// the batch's CRC-32C already covers.
		e.lz4 = lz4.NewWriter(nil)
		if err := e.lz4.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.ChecksumOption(false)); err != nil {
			panic(fmt.Sprintf("lz4 block size: %v", err)) // a constant option of a known writer
		}
	}
	return e
}

// compressor returns the writer that compresses into w.
func (e *batchEncoder) compressor(w io.Writer) io.WriteCloser {
	if e.lz4 != nil {
		e.lz4.Reset(w)
		return e.lz4
	}
	return e.codec.NewWriter(w)
}

// encode returns batch as a size-prefixed v2 record batch. The result is valid until the next call.
// Records are appended straight into the output when uncompressed; with a codec they are encoded
// once into a scratch buffer and compressed into the output.
func (e *batchEncoder) encode(batch []queued, h batchHeader) ([]byte, error) {
	if len(batch) == 0 {
		return nil, fmt.Errorf("kafka: an empty record batch")
	}
	need := recordsSize(batch)
	out := e.out[:0]
	if e.codec == nil {
		out = slices.Grow(out, sizePrefix+batchHeaderSize+need)
	}
	out = append(out, make([]byte, sizePrefix+batchHeaderSize)...)
	if e.codec == nil {
		out = appendRecords(out, batch)
	} else {
		e.records = appendRecords(slices.Grow(e.records[:0], need), batch)
		w := e.compressor(&appender{b: &out})
		_, err := w.Write(e.records)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			e.out = out
			return nil, fmt.Errorf("kafka: compressing a record batch with %s: %w", e.codec.Name(), err)
		}
	}
	e.out = out
	b := out[sizePrefix:]
	be := binary.BigEndian
	be.PutUint32(out, uint32(len(b)))
	be.PutUint64(b[offBaseOffset:], 0)
	be.PutUint32(b[offBatchLength:], uint32(len(b)-offLeaderEpoch))
	be.PutUint32(b[offLeaderEpoch:], math.MaxUint32) // -1
	b[offMagic] = 2
	be.PutUint16(b[offAttributes:], uint16(e.attrs))
	be.PutUint32(b[offLastOffsetDelta:], uint32(len(batch)-1))
	be.PutUint64(b[offFirstTimestamp:], uint64(h.timestamp))
	be.PutUint64(b[offMaxTimestamp:], uint64(h.timestamp))
	be.PutUint64(b[offProducerID:], uint64(h.producerID))
	be.PutUint16(b[offProducerEpoch:], uint16(h.producerEpoch))
	be.PutUint32(b[offBaseSequence:], uint32(h.baseSequence))
	be.PutUint32(b[offRecordCount:], uint32(len(batch)))
	be.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
	return out, nil
}

// appender is an io.Writer appending to a slice (the compressor's output).
type appender struct{ b *[]byte }

func (a *appender) Write(p []byte) (int, error) {
	*a.b = append(*a.b, p...)
	return len(p), nil
}

// appendRecords appends the records of batch in the v2 record format: the record's length, then
// attributes (0), timestamp delta (0), offset delta, key, value and headers, every integer a zigzag
// varint and every byte string preceded by its length (-1 for null).
func appendRecords(b []byte, batch []queued) []byte {
	for i := range batch {
		r := &batch[i].rec
		body := recordBodySize(r, i)
		b = binary.AppendVarint(b, int64(body))
		b = append(b, 0)                     // attributes
		b = binary.AppendVarint(b, 0)        // timestamp delta
		b = binary.AppendVarint(b, int64(i)) // offset delta
		b = appendNullable(b, r.Key)         // null key: -1
		b = appendValue(b, r)                // tombstone: -1
		b = binary.AppendVarint(b, int64(len(r.Headers)))
		for _, h := range r.Headers {
			b = binary.AppendVarint(b, int64(len(h.Key)))
			b = append(b, h.Key...)
			b = appendNullable(b, h.Value)
		}
	}
	return b
}

// recordBodySize is the length of record r at offset delta i, after its own length.
func recordBodySize(r *Record, i int) int {
	body := 1 + varintSize(0) + varintSize(int64(i)) + nullableSize(r.Key) + valueSize(r) + varintSize(int64(len(r.Headers)))
	for _, h := range r.Headers {
		body += varintSize(int64(len(h.Key))) + len(h.Key) + nullableSize(h.Value)
	}
	return body
}

// recordsSize is the length of batch's records as appendRecords writes them.
func recordsSize(batch []queued) int {
	n := 0
	for i := range batch {
		r := &batch[i].rec
		body := recordBodySize(r, i)
		n += varintSize(int64(body)) + body
	}
	return n
}

func appendNullable(b, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(b, -1)
	}
	b = binary.AppendVarint(b, int64(len(v)))
	return append(b, v...)
}

// appendValue appends the record's value (its shared prefix and its own bytes) as a nullable field.
func appendValue(b []byte, r *Record) []byte {
	if r.Value == nil {
		return binary.AppendVarint(b, -1)
	}
	b = binary.AppendVarint(b, int64(len(r.ValuePrefix)+len(r.Value)))
	return append(append(b, r.ValuePrefix...), r.Value...)
}

func valueSize(r *Record) int {
	if r.Value == nil {
		return varintSize(-1)
	}
	n := len(r.ValuePrefix) + len(r.Value)
	return varintSize(int64(n)) + n
}

func nullableSize(v []byte) int {
	if v == nil {
		return varintSize(-1)
	}
	return varintSize(int64(len(v))) + len(v)
}

// varintSize is the length of v as a zigzag varint (binary.AppendVarint).
func varintSize(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// nextSequence is the sequence number after a batch of n records starting at seq: Kafka's sequences
// are non-negative int32s that wrap from math.MaxInt32 to 0 (DefaultRecordBatch.incrementSequence).
func nextSequence(seq int32, n int) int32 {
	if int64(seq)+int64(n) > math.MaxInt32 {
		return int32(int64(seq) + int64(n) - math.MaxInt32 - 1)
	}
	return seq + int32(n)
}
