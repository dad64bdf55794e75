package kafkasink

import (
	"context"
	"fmt"
	"time"
	"unsafe"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"

	"github.com/pgcdc/pgcdc/pkg/kafkaclient"
)

// producer writes one batch of records to one topic partition and returns once Kafka acknowledged
// it (or failed). The partition loops call it with at most one batch per partition outstanding.
// It is the seam where another producer (idempotent, pipelined) can replace kafka-go's Writer.
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
// transaction coordinator until ctx ends), else kafka-go's Writer.
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
	w := &kafka.Writer{
		Addr:        kc.Addr(),
		Balancer:    presetPartition{},
		MaxAttempts: 1, // retries are the partition loop's: without end for retriable errors, none for permanent ones
		BatchSize:   opts.BatchMaxMessages + 1,
		BatchBytes:  1 << 30, // batches are cut by the partition queue, below the topic's max.message.bytes
		// The Writer must not hold our batches back: a batch handed to WriteMessages is complete
		// (kafka-go would otherwise wait BatchTimeout, default 1 s, for a batch that never fills).
		// kafka.batch_timeout is applied by the partition loop (linger).
		BatchTimeout: time.Microsecond,
		WriteTimeout: opts.WriteTimeout,
		ReadTimeout:  opts.WriteTimeout,
		RequiredAcks: acks,
		Compression:  codec,
		Transport:    transport,
	}
	return &writerProducer{w: w}, admin, refresher, nil
}

// messageWriter is the part of *kafka.Writer the producer uses.
type messageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}

// writerProducer produces through kafka-go's Writer: one WriteMessages call per batch.
type writerProducer struct {
	w messageWriter
}

// presetPartition routes a message to the partition the Sink chose (Message.Partition).
type presetPartition struct{}

func (presetPartition) Balance(msg kafka.Message, _ ...int) int { return msg.Partition }

// Header and kafka.Header have the same underlying type (the conversion below would not compile
// otherwise), so a []Header is viewed as a []kafka.Header without copying.
var _ = kafka.Header(Header{})

func kafkaHeaders(h []Header) []kafka.Header {
	if len(h) == 0 {
		return nil
	}
	return unsafe.Slice((*kafka.Header)(unsafe.Pointer(unsafe.SliceData(h))), len(h))
}

func (p *writerProducer) Produce(ctx context.Context, topic string, partition int, batch []queued) error {
	msgs := make([]kafka.Message, len(batch))
	for i := range batch {
		r := &batch[i].rec
		msgs[i] = kafka.Message{Topic: topic, Partition: partition, Key: r.Key, Value: r.Value, Headers: kafkaHeaders(r.Headers)}
	}
	return p.w.WriteMessages(ctx, msgs...)
}

func (p *writerProducer) Close() error { return p.w.Close() }
