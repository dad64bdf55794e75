package kafkasink

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"
	"unsafe"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"

	"github.com/pgcdc/pgcdc/pkg/kafkaclient"
)

// producer writes one batch of records to one topic partition and returns once Kafka acknowledged
// it (or failed). The partition loops call it with at most one batch per partition outstanding.
// It is the seam where another producer (idempotent, pipelined) can replace the one below.
type producer interface {
	Produce(ctx context.Context, topic string, partition int, batch []queued) error
	Close() error
}

// The configuration strings, mapped onto kafka-go's values.
var (
	requiredAcks = map[string]kafka.RequiredAcks{"": kafka.RequireAll, "all": kafka.RequireAll, "one": kafka.RequireOne, "none": kafka.RequireNone}
	compressions = map[string]compress.Compression{"": 0, "none": 0, "gzip": compress.Gzip, "snappy": compress.Snappy, "lz4": compress.Lz4, "zstd": compress.Zstd}
)

// codecOf maps kafka.compression onto kafka-go's codec.
func codecOf(opts Options) (compress.Compression, error) {
	codec, ok := compressions[opts.Compression]
	if !ok {
		return 0, fmt.Errorf("kafka.compression: %q is not none, gzip, snappy, lz4 or zstd", opts.Compression)
	}
	return codec, nil
}

// newKafkaGo builds the producer and admin client for opts, connecting through kc (TLS, SASL), and
// the refresher that drops their shared transport's cached cluster metadata. The producer is the
// fenced idempotent one when kafka.transactional_id is set (it starts its session, waiting for the
// transaction coordinator until ctx ends), else one kafka-go produce request per batch.
func newKafkaGo(ctx context.Context, opts Options, kc *kafkaclient.Client) (producer, topicAdmin, *metadataRefresher, error) {
	acks, ok := requiredAcks[opts.Acks]
	if !ok {
		return nil, nil, nil, fmt.Errorf("kafka.acks: %q is not all, one or none", opts.Acks)
	}
	if opts.TransactionalID != "" && acks != kafka.RequireAll {
		return nil, nil, nil, fmt.Errorf("kafka.acks: %q with kafka.transactional_id set; an idempotent producer needs acks all", opts.Acks)
	}
	codec, err := codecOf(opts)
	if err != nil {
		return nil, nil, nil, err
	}
	transport := kc.Transport()
	transport.MetadataTTL = 30 * time.Second
	admin := &kafka.Client{Addr: kc.Addr(), Transport: transport, Timeout: 30 * time.Second}
	refresher := newMetadataRefresher(transport, time.Second)
	if opts.TransactionalID != "" {
		p, err := newFencedProducer(ctx, kc.Addr(), transport, opts)
		if err != nil {
			return nil, nil, nil, err
		}
		return p, admin, refresher, nil
	}
	prod := &clientProducer{
		c:       &kafka.Client{Addr: kc.Addr(), Transport: transport, Timeout: opts.WriteTimeout},
		acks:    acks,
		codec:   codec,
		timeout: opts.WriteTimeout,
		tr:      transport,
	}
	return prod, admin, refresher, nil
}

// clientProducer sends each batch as one produce request (kafka-go's Client.Produce), reading the
// records straight from the batch: the sink already partitions, batches, orders and retries, so
// kafka-go's Writer would only add a copy of every record into its own batch (an array of
// batch_max_messages+1 messages allocated per batch), a goroutine and a timer per batch.
type clientProducer struct {
	c       *kafka.Client
	acks    kafka.RequiredAcks
	codec   compress.Compression
	timeout time.Duration // kafka.write_timeout; 0: none
	tr      *kafka.Transport
}

func (p *clientProducer) Produce(ctx context.Context, topic string, partition int, batch []queued) error {
	if p.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout)
		defer cancel()
	}
	res, err := p.c.Produce(ctx, &kafka.ProduceRequest{
		Topic:        topic,
		Partition:    partition,
		RequiredAcks: p.acks,
		Compression:  p.codec,
		Records:      &batchRecords{batch: batch},
	})
	if err != nil {
		return err
	}
	if res == nil { // acks=none: no answer
		return nil
	}
	if res.Error != nil {
		return res.Error
	}
	for _, e := range res.RecordErrors {
		return e
	}
	return nil
}

func (p *clientProducer) Close() error {
	p.tr.CloseIdleConnections()
	return nil
}

// batchRecords reads a batch as kafka-go records without copying keys and values (kafka-go's
// encoder copies them once, into the request or its compressor). One record is reused: the
// encoder is done with a record before it reads the next.
type batchRecords struct {
	batch      []queued
	next       int
	rec        kafka.Record
	key, value bytesReader
}

func (r *batchRecords) ReadRecord() (*kafka.Record, error) {
	if r.next >= len(r.batch) {
		return nil, io.EOF
	}
	q := &r.batch[r.next].rec
	r.next++
	r.rec = kafka.Record{Headers: kafkaHeaders(q.Headers)}
	if q.Key != nil {
		r.key.Reset(q.Key)
		r.rec.Key = &r.key
	}
	if q.Value != nil {
		r.value.Reset(q.Value)
		r.rec.Value = &r.value
	}
	return &r.rec, nil
}

// bytesReader is a kafka-go Bytes over a byte slice (bytes.Reader's WriteTo writes it in one go).
type bytesReader struct{ bytes.Reader }

func (*bytesReader) Close() error { return nil }

// Header and kafka.Header have the same underlying type (the conversion below would not compile
// otherwise), so a []Header is viewed as a []kafka.Header without copying.
var _ = kafka.Header(Header{})

func kafkaHeaders(h []Header) []kafka.Header {
	if len(h) == 0 {
		return nil
	}
	return unsafe.Slice((*kafka.Header)(unsafe.Pointer(unsafe.SliceData(h))), len(h))
}
