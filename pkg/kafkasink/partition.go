package kafkasink

import (
	"errors"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/pkg/ack"
)

type queued struct {
	rec  Record
	size int64 // bytes in a record batch (against batch and topic limits)
	mem  int64 // bytes held in the in-flight budget
}

// partitionQueue holds the records of one topic partition waiting for its writer goroutine.
type partitionQueue struct {
	key         partitionKey
	maxMessages int
	maxBytes    int64

	mu      sync.Mutex
	pending []queued
	notify  chan struct{} // capacity 1: "pending is not empty"
}

func (q *partitionQueue) push(r queued) {
	q.mu.Lock()
	q.pending = append(q.pending, r)
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// full reports whether a whole batch is waiting.
func (q *partitionQueue) full() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) >= q.maxMessages {
		return true
	}
	var bytes int64
	for i := range q.pending {
		if bytes += q.pending[i].size; bytes >= q.maxBytes {
			return true
		}
	}
	return false
}

// take removes the next batch: at most maxMessages records and maxBytes bytes (at least one record).
func (q *partitionQueue) take(buf []queued) []queued {
	q.mu.Lock()
	defer q.mu.Unlock()
	var bytes int64
	n := 0
	for n < len(q.pending) && n < q.maxMessages {
		if n > 0 && bytes+q.pending[n].size > q.maxBytes {
			break
		}
		bytes += q.pending[n].size
		n++
	}
	buf = append(buf[:0], q.pending[:n]...)
	rest := copy(q.pending, q.pending[n:])
	clear(q.pending[rest:])
	q.pending = q.pending[:rest]
	if rest > 0 {
		select {
		case q.notify <- struct{}{}:
		default:
		}
	}
	return buf
}

// runPartition is the partition's writer loop: one batch outstanding at a time, each retried until
// it is acknowledged or fails permanently.
func (s *Sink) runPartition(q *partitionQueue) {
	var batch []queued
	var msgs []kafka.Message
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-q.notify:
		}
		if s.opts.BatchTimeout > 0 && !s.linger(q) {
			return
		}
		batch = q.take(batch)
		if len(batch) == 0 {
			continue
		}
		msgs = msgs[:0]
		for i := range batch {
			r := &batch[i].rec
			msgs = append(msgs, kafka.Message{Topic: r.Topic, Partition: q.key.partition, Key: r.Key, Value: r.Value, Headers: r.Headers})
		}
		if !s.write(q, msgs) {
			return
		}
		s.acknowledge(batch)
	}
}

// linger waits up to batch_timeout for a batch to fill before it is sent; it returns false when the
// sink is closing. Records that arrive while a batch is in flight form the next batch anyway, so
// batch_timeout only matters for an idle partition's first record.
func (s *Sink) linger(q *partitionQueue) bool {
	timer := time.NewTimer(s.opts.BatchTimeout)
	defer timer.Stop()
	for !q.full() {
		select {
		case <-s.ctx.Done():
			return false
		case <-timer.C:
			return true
		case <-time.After(time.Millisecond):
		}
	}
	return true
}

// Retry backoff of a failed batch: doubling from retryBackoffMin up to retryBackoffMax, as the Java
// producer's retry.backoff.ms (100 ms) and retry.backoff.max.ms (1 s) defaults. A longer cap would
// add its length to every leader change (the retry after the new leader is known waits for it).
const (
	retryBackoffMin = 100 * time.Millisecond
	retryBackoffMax = time.Second
)

// write sends one batch until Kafka acknowledges it. It returns false when the sink is closing or
// the failure is permanent (then the sink fails and nothing after this batch is ever sent). A failure
// that may come from stale metadata (a leader change, a broker gone) drops the cached metadata, so the
// retry goes to the partition's current leader.
func (s *Sink) write(q *partitionQueue, msgs []kafka.Message) bool {
	backoff := retryBackoffMin
	for attempt := 1; ; attempt++ {
		started := time.Now()
		err := s.writer.WriteMessages(s.ctx, msgs...)
		if s.opts.OnWrite != nil && s.ctx.Err() == nil {
			s.opts.OnWrite(len(msgs), messageBytes(msgs), time.Since(started), err)
		}
		if err == nil {
			if attempt > 1 {
				s.log.Info().Str("topic", q.key.topic).Int("partition", q.key.partition).Int("attempts", attempt).Msg("kafka write succeeded after retries")
			}
			return true
		}
		if s.ctx.Err() != nil {
			return false
		}
		if perm := classify(q.key.topic, q.key.partition, err); perm != nil {
			s.log.Error().Err(perm).Msg("kafka write failed permanently")
			s.fail(perm)
			return false
		}
		refreshed := staleMetadata(err) && s.metadata.refresh()
		if attempt <= 3 || attempt%10 == 0 { // a long outage retries every second: log the start, then every tenth
			s.log.Warn().Err(firstError(err)).Str("topic", q.key.topic).Int("partition", q.key.partition).
				Int("records", len(msgs)).Int("attempt", attempt).Dur("backoff", backoff).Bool("metadata_refreshed", refreshed).
				Msg("kafka write failed; retrying")
		}
		select {
		case <-s.ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = nextBackoff(backoff)
	}
}

// nextBackoff doubles d up to retryBackoffMax.
func nextBackoff(d time.Duration) time.Duration { return min(2*d, retryBackoffMax) }

// messageBytes is the size of a batch's keys, values and headers.
func messageBytes(msgs []kafka.Message) int64 {
	var n int64
	for i := range msgs {
		n += int64(len(msgs[i].Key) + len(msgs[i].Value))
		for _, h := range msgs[i].Headers {
			n += int64(len(h.Key) + len(h.Value))
		}
	}
	return n
}

// firstError unpacks kafka-go's per-message WriteErrors for a readable log line.
func firstError(err error) error {
	var werr kafka.WriteErrors
	if errors.As(err, &werr) {
		for _, e := range werr {
			if e != nil {
				return e
			}
		}
	}
	return err
}

// acknowledge reports an acknowledged batch to the tracker (grouped by transaction) and frees its
// bytes in the budget.
func (s *Sink) acknowledge(batch []queued) {
	var bytes int64
	var txn ack.TxnID
	n := 0
	for i := range batch {
		bytes += batch[i].mem
		if batch[i].rec.Txn != txn && n > 0 {
			s.tracker.Ack(txn, n)
			n = 0
		}
		txn = batch[i].rec.Txn
		n++
		batch[i] = queued{} // drop references to the record bytes
	}
	if n > 0 {
		s.tracker.Ack(txn, n)
	}
	s.budget.release(bytes)
}
