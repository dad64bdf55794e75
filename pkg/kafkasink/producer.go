package kafkasink

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	"github.com/segmentio/kafka-go/protocol"

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
	timeout := opts.WriteTimeout
	prod := &clientProducer{
		c:       &kafka.Client{Addr: kc.Addr(), Transport: transport, Timeout: timeout},
		acks:    acks,
		timeout: timeout,
		tr:      transport,
		now:     time.Now,
	}
	prod.encoders = newEncoderPool(codec)
	return prod, admin, refresher, nil
}

// clientProducer sends each batch as one produce request whose record batch it encodes itself
// (recordbatch.go, the encoder the fenced producer uses) and hands to kafka-go's RawProduce: the
// sink already partitions, batches, orders and retries, so kafka-go's Writer would only add a copy
// of every record into a batch of its own, a goroutine and a timer per batch, and its record
// encoder one more pass over every byte. Its batches are plain (not idempotent): producer id,
// epoch and base sequence -1, as Kafka's own non-idempotent producer writes them.
type clientProducer struct {
	c        *kafka.Client
	acks     kafka.RequiredAcks
	timeout  time.Duration // kafka.write_timeout; 0: none
	tr       *kafka.Transport
	now      func() time.Time
	encoders *encoderPool
}

// plainBatch is the header of a batch from a producer without a producer id.
func plainBatch(now time.Time) batchHeader {
	return batchHeader{producerID: -1, producerEpoch: -1, baseSequence: -1, timestamp: now.UnixMilli()}
}

func (p *clientProducer) Produce(ctx context.Context, topic string, partition int, batch []queued) error {
	if p.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout)
		defer cancel()
	}
	res, err := rawProduce(ctx, p.c, p.encoders, topic, partition, p.acks, batch, plainBatch(p.now()))
	if err != nil {
		return err
	}
	if res == nil { // acks=none: no answer
		return nil
	}
	if res.Error != nil {
		return res.Error
	}
	for i, rerr := range res.RecordErrors {
		return fmt.Errorf("kafka: the broker refused record %d of the batch: %w", i, rerr)
	}
	return nil
}

func (p *clientProducer) Close() error {
	p.tr.CloseIdleConnections()
	return nil
}

// rawProduce encodes batch with an encoder from encoders and sends it as one produce request.
func rawProduce(ctx context.Context, c *kafka.Client, encoders *encoderPool, topic string, partition int,
	acks kafka.RequiredAcks, batch []queued, h batchHeader) (*kafka.ProduceResponse, error) {
	enc := encoders.get()
	buf, err := enc.encode(batch, h)
	if err != nil {
		encoders.put(enc)
		return nil, err
	}
	res, err := c.RawProduce(ctx, &kafka.RawProduceRequest{
		Topic:        topic,
		Partition:    partition,
		RequiredAcks: acks,
		RawRecords:   protocol.RawRecordSet{Reader: bytes.NewReader(buf)},
	})
	// The transport encodes the request on its connection's goroutine; when RawProduce returned
	// because ctx ended, that goroutine may still be reading buf: the encoder is then left to the GC.
	if ctx.Err() == nil {
		encoders.put(enc)
	}
	return res, err
}
