package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"

	"github.com/pgcdc/pgcdc/internal/retry"
	"github.com/pgcdc/pgcdc/pkg/kafkaclient"
)

// transactionTimeoutMs is the transaction timeout InitProducerID registers. The fenced producer
// never opens a transaction (its batches are not transactional); the coordinator only checks it
// against transaction.max.timeout.ms (default 15 minutes).
const transactionTimeoutMs = 60000

// fencedProducer is an idempotent producer whose producer id belongs to a transactional id
// (kafka.transactional_id). Every process that starts with the same transactional id calls
// InitProducerID, which bumps the producer epoch; once the new process has written to a partition,
// the broker refuses every batch of an older epoch there (INVALID_PRODUCER_EPOCH / PRODUCER_FENCED):
// a frozen process that thaws cannot publish what it had buffered after a standby took over.
//
// Its batches are not transactional: each is an idempotent batch (producer id, epoch, sequence
// numbers) that the broker deduplicates. It encodes the record batches itself and sends them with
// kafka-go's RawProduce over the sink's transport (so the metadata refresher serves it too).
type fencedProducer struct {
	client          *kafka.Client
	transactionalID string
	producerID      int64
	producerEpoch   int16
	encoders        *encoderPool
	codec           compress.Compression
	now             func() time.Time
	log             zerolog.Logger

	mu   sync.Mutex
	next map[partitionKey]int32 // the sequence number of the next batch per topic partition
}

// initProducerRetriable are the InitProducerID answers that go away by themselves: the transaction
// coordinator is moving or loading, or a previous session's state is still being completed.
var initProducerRetriable = map[kafka.Error]bool{
	kafka.GroupCoordinatorNotAvailable: true, // COORDINATOR_NOT_AVAILABLE (15)
	kafka.NotCoordinatorForGroup:       true, // NOT_COORDINATOR (16)
	kafka.GroupLoadInProgress:          true, // COORDINATOR_LOAD_IN_PROGRESS (14)
	kafka.ConcurrentTransactions:       true, // CONCURRENT_TRANSACTIONS (51)
	kafka.RequestTimedOut:              true,
	kafka.NotEnoughReplicas:            true, // the transaction log's partition lacks replicas
	kafka.NotEnoughReplicasAfterAppend: true,
}

// newFencedProducer starts a producer session for opts.TransactionalID: it calls InitProducerID
// (through the transaction coordinator, which the transport finds) until it gets a producer id and
// epoch, retrying retriable answers and network errors until ctx ends.
func newFencedProducer(ctx context.Context, addr net.Addr, transport kafka.RoundTripper, opts Options) (*fencedProducer, error) {
	codec, err := codecOf(opts)
	if err != nil {
		return nil, err
	}
	timeout := opts.WriteTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second // kafka-go Writer's default WriteTimeout
	}
	p := &fencedProducer{
		client:          &kafka.Client{Addr: addr, Transport: transport, Timeout: timeout},
		transactionalID: opts.TransactionalID,
		codec:           codec,
		now:             time.Now,
		log:             opts.Logger,
		next:            map[partitionKey]int32{},
	}
	p.encoders = newEncoderPool(p.codec)
	b := retry.New(retryBackoffMin, retryBackoffMax)
	for attempt := 1; ; attempt++ {
		err := p.initProducerID(ctx)
		if err == nil {
			p.log.Info().Str("transactional_id", p.transactionalID).Int64("producer_id", p.producerID).
				Int("producer_epoch", int(p.producerEpoch)).Msg("kafka producer session started")
			return p, nil
		}
		var kerr kafka.Error
		if errors.As(err, &kerr) && !initProducerRetriable[kerr] || kafkaclient.IsPermanent(err) {
			hint := ""
			switch kerr {
			case kafka.TransactionalIDAuthorizationFailed:
				hint = " (grant this client WRITE and DESCRIBE on the TransactionalId resource of that id)"
			case kafka.ClusterAuthorizationFailed:
				hint = " (grant this client IDEMPOTENT_WRITE on the cluster)"
			}
			return nil, fmt.Errorf("kafka.transactional_id %q: starting the producer session failed%s: %w", p.transactionalID, hint, err)
		}
		if attempt <= 3 || attempt%10 == 0 {
			p.log.Warn().Err(err).Str("transactional_id", p.transactionalID).Int("attempt", attempt).Msg("kafka InitProducerID failed; retrying")
		}
		if werr := b.Wait(ctx); werr != nil {
			return nil, fmt.Errorf("kafka.transactional_id %q: no producer session before the deadline (last error: %v): %w", p.transactionalID, err, werr)
		}
	}
}

func (p *fencedProducer) initProducerID(ctx context.Context) error {
	res, err := p.client.InitProducerID(ctx, &kafka.InitProducerIDRequest{
		TransactionalID:      p.transactionalID,
		TransactionTimeoutMs: transactionTimeoutMs,
		// -1/-1: a new session (the protocol's defaults). kafka-go sends its fields as they are from
		// request version 3 on, and a ProducerID of 0 would ask to bump the epoch of producer 0,
		// which the coordinator refuses as PRODUCER_FENCED once the transactional id has a session.
		ProducerID:    -1,
		ProducerEpoch: -1,
	})
	if err != nil {
		return err
	}
	if res.Error != nil {
		return res.Error
	}
	p.producerID, p.producerEpoch = int64(res.Producer.ProducerID), int16(res.Producer.ProducerEpoch)
	return nil
}

// Produce writes batch with the partition's next sequence number and advances it only when the
// broker acknowledged the batch.
//
// This relies on the sink's contract (Sink.runPartition and Sink.write): at most one batch per
// partition is outstanding, and a failed batch is retried with the same records until it succeeds or
// fails permanently. A retry therefore carries the same sequence number as the attempt before it,
// and when that attempt was in fact written (a timeout after the append) the broker answers
// DUPLICATE_SEQUENCE_NUMBER or the original offset instead of appending it twice: no duplicate
// within a producer session.
func (p *fencedProducer) Produce(ctx context.Context, topic string, partition int, batch []queued) error {
	key := partitionKey{topic, partition}
	p.mu.Lock()
	seq := p.next[key]
	p.mu.Unlock()
	if err := p.send(ctx, topic, partition, batch, seq); err != nil {
		return err
	}
	p.mu.Lock()
	p.next[key] = nextSequence(seq, len(batch))
	p.mu.Unlock()
	return nil
}

// send encodes batch with base sequence seq and writes it with acks=all.
func (p *fencedProducer) send(ctx context.Context, topic string, partition int, batch []queued, seq int32) error {
	h := batchHeader{producerID: p.producerID, producerEpoch: p.producerEpoch, baseSequence: seq, timestamp: p.now().UnixMilli()}
	res, err := rawProduce(ctx, p.client, p.encoders, topic, partition, kafka.RequireAll, batch, h)
	if err != nil {
		return err
	}
	if res.Error != nil {
		return p.brokerError(topic, partition, res.Error)
	}
	for i, rerr := range res.RecordErrors {
		return fmt.Errorf("kafka: the broker refused record %d of the batch: %w", i, rerr)
	}
	return nil
}

// brokerError maps a produce answer of the broker onto what the sink does with it.
func (p *fencedProducer) brokerError(topic string, partition int, err error) error {
	var kerr kafka.Error
	if !errors.As(err, &kerr) {
		return err
	}
	switch kerr {
	case kafka.DuplicateSequenceNumber:
		// The batch was appended before (a retry of a write whose answer was lost).
		return nil
	case kafka.InvalidProducerEpoch, kafka.ProducerFenced:
		return &FencedError{TransactionalID: p.transactionalID, ProducerEpoch: p.producerEpoch, Topic: topic, Partition: partition, Err: err}
	}
	return err
}

// Close ends nothing: the producer holds no connection of its own (the transport is shared with the
// admin client). The session ends when another process takes the transactional id over or the
// coordinator expires it.
func (p *fencedProducer) Close() error { return nil }
