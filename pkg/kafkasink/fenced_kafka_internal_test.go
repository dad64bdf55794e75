package kafkasink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/retry"
	"github.com/pgcdc/pgcdc/internal/testenv"
	"github.com/pgcdc/pgcdc/pkg/ack"
	"github.com/pgcdc/pgcdc/pkg/kafkaclient"
)

// Integration tests of the fenced producer against the test broker (run them under
// internal/cmd/testenv, or with PGCDC_TEST_KAFKA_BROKERS set).

// startFenced opens a producer session for txnID, as a pgcdc process would at start-up.
func startFenced(t *testing.T, brokers []string, txnID, compression string) *fencedProducer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kc, err := kafkaclient.New(ctx, kafkaclient.Settings{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	tr := kc.Transport()
	t.Cleanup(tr.CloseIdleConnections)
	p, err := newFencedProducer(ctx, kc.Addr(), tr, Options{TransactionalID: txnID, Compression: compression, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatalf("start a producer session for %q: %v", txnID, err)
	}
	return p
}

// fencedTopic creates a topic of its own for t on the test broker.
func fencedTopic(t *testing.T, partitions int) (brokers []string, topic string) {
	t.Helper()
	brokers = testenv.SharedKafka(t)
	topic = testenv.UniqueName(t, "fenced")
	testenv.CreateTopic(t, brokers, topic, partitions)
	return brokers, topic
}

// fencedSink is a Sink with transactional id topic (batches of at most 7 records), closed at cleanup.
func fencedSink(t *testing.T, brokers []string, topic, codec string, tracker *ack.Tracker) *Sink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := New(ctx, Options{
		Brokers: brokers, Compression: codec, TransactionalID: topic,
		BatchMaxMessages: 7, BatchMaxBytes: 1 << 20, MaxInFlightBytes: 1 << 20, WriteTimeout: 10 * time.Second,
		Logger: zerolog.Nop(),
	}, tracker)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// batchOf builds a batch of records whose values are the given strings (keys k-<value>).
func batchOf(values ...string) []queued {
	b := make([]queued, len(values))
	for i, v := range values {
		b[i] = queued{rec: Record{Key: []byte("k-" + v), Value: []byte(v)}}
	}
	return b
}

// produce writes one batch as the sink's partition loop does: retried (the same batch) while the
// failure is retriable, e.g. NOT_LEADER_OR_FOLLOWER while a new topic's leaders are elected, at
// most 30 s.
func produce(p *fencedProducer, topic string, partition int, values ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	batch := batchOf(values...)
	b := retry.New(10*time.Millisecond, 500*time.Millisecond)
	for {
		err := p.Produce(ctx, topic, partition, batch)
		if err == nil || classify(topic, partition, err) != nil {
			return err
		}
		if werr := b.Wait(ctx); werr != nil {
			return fmt.Errorf("%w (retried until %w)", err, werr)
		}
	}
}

// checkPartition checks that topic holds total records in all, and partition the values want in
// this order.
func checkPartition(t *testing.T, brokers []string, topic string, partition, total int, want ...string) {
	t.Helper()
	if got := partitionValues(t, brokers, topic, partition, total); !slices.Equal(got, want) {
		t.Fatalf("partition %d holds %v, want %v", partition, got, want)
	}
}

// partitionValues returns the values one partition of topic holds, in offset order, after checking
// that the topic holds exactly want records in all.
func partitionValues(t *testing.T, brokers []string, topic string, partition, want int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	msgs, err := testenv.ReadTopic(ctx, brokers, topic, want, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n := testenv.TopicRecords(ctx, brokers, topic); n != int64(want) {
		t.Fatalf("topic %s holds %d records, want %d", topic, n, want)
	}
	var out []string
	for _, m := range msgs {
		if m.Partition == partition {
			out = append(out, string(m.Value))
		}
	}
	return out
}

// A Sink with a transactional id publishes through the fenced producer: every record arrives once,
// in order, with its exact key, value (null for a tombstone) and headers, for every codec.
func TestFencedSinkPublishes(t *testing.T) {
	brokers := testenv.SharedKafka(t)
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			topic := testenv.UniqueName(t, "fenced")
			testenv.CreateTopic(t, brokers, topic, 1)
			tracker := ack.New(0x10)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			s := fencedSink(t, brokers, topic, codec, tracker)
			if _, ok := s.prod.(*fencedProducer); !ok {
				t.Fatalf("the sink's producer is %T, want the fenced producer", s.prod)
			}
			const n = 60
			want := make([]Record, n)
			txn := tracker.Begin()
			tracker.Add(txn, n)
			for i := range want {
				want[i] = Record{Topic: topic, Key: []byte(fmt.Sprintf(`{"id":%d}`, i)), Value: bytes.Repeat([]byte{byte('a' + i%26)}, 1+i*10), Txn: txn,
					Headers: []Header{{Key: "seq", Value: []byte(fmt.Sprint(i))}, {Key: "empty", Value: []byte{}}}}
				if i%9 == 4 {
					want[i].Value = nil // tombstone
				}
				if err := s.Append(ctx, want[i]); err != nil {
					t.Fatal(err)
				}
			}
			tracker.Commit(txn, 0x200)
			if err := tracker.WaitIdle(ctx); err != nil {
				t.Fatalf("not acknowledged (sink error %v): %v", s.FatalErr(), err)
			}
			msgs, err := testenv.ReadTopic(ctx, brokers, topic, n, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if got := testenv.TopicRecords(ctx, brokers, topic); got != n {
				t.Fatalf("topic holds %d records, want %d", got, n)
			}
			for i, m := range msgs {
				w := want[i]
				// (kafka-go's reader returns nil for an empty value as for a null one: the values here
				// are never empty, and the unit tests tell null from empty in the encoding.)
				if !bytes.Equal(m.Key, w.Key) || !bytes.Equal(m.Value, w.Value) || (m.Value == nil) != (w.Value == nil) {
					t.Fatalf("record %d: key %q value %.30q (null %v), want %q %.30q (null %v)", i, m.Key, m.Value, m.Value == nil, w.Key, w.Value, w.Value == nil)
				}
				if len(m.Headers) != 2 || m.Headers[0].Key != "seq" || string(m.Headers[0].Value) != fmt.Sprint(i) || m.Headers[1].Key != "empty" || len(m.Headers[1].Value) != 0 {
					t.Fatalf("record %d headers %v", i, m.Headers)
				}
			}
		})
	}
}

// A batch sent again with the sequence number it was written with (a retry after a lost answer) is
// not appended again; a sequence number past the next one is refused as out of order, which the sink
// treats as permanent.
func TestFencedProducerDeduplicatesARetriedBatch(t *testing.T) {
	brokers, topic := fencedTopic(t, 1)
	p := startFenced(t, brokers, topic, "lz4")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := produce(p, topic, 0, "a1", "a2", "a3"); err != nil {
		t.Fatal(err)
	}
	if err := produce(p, topic, 0, "b1", "b2"); err != nil {
		t.Fatal(err)
	}
	if got := p.next[partitionKey{topic, 0}]; got != 5 {
		t.Fatalf("next sequence %d, want 5", got)
	}
	// The same batches again with their sequence numbers: the broker keeps the last five batches of
	// each producer and answers a duplicate with success (or DUPLICATE_SEQUENCE_NUMBER).
	if err := p.send(ctx, topic, 0, batchOf("b1", "b2"), 3); err != nil {
		t.Fatalf("the retried last batch: %v", err)
	}
	if err := p.send(ctx, topic, 0, batchOf("a1", "a2", "a3"), 0); err != nil {
		t.Fatalf("the retried first batch: %v", err)
	}
	if err := produce(p, topic, 0, "c1"); err != nil {
		t.Fatal(err)
	}
	checkPartition(t, brokers, topic, 0, 6, "a1", "a2", "a3", "b1", "b2", "c1")
	// A gap in the sequence: what a session whose state the broker lost would send. The refusal is
	// permanent for the sink, and a failed write leaves the next sequence number where it was.
	key := partitionKey{topic, 0}
	p.mu.Lock()
	p.next[key] = 100
	p.mu.Unlock()
	err := produce(p, topic, 0, "gap")
	if !errors.Is(err, kafka.OutOfOrderSequenceNumber) {
		t.Fatalf("a batch with a sequence gap: %v, want OUT_OF_ORDER_SEQUENCE_NUMBER", err)
	}
	if perm := classify(topic, 0, err); perm == nil {
		t.Fatalf("OUT_OF_ORDER_SEQUENCE_NUMBER is not permanent for the sink")
	}
	p.mu.Lock()
	next := p.next[key]
	p.mu.Unlock()
	if next != 100 {
		t.Fatalf("next sequence %d after a failed write, want it unchanged (100)", next)
	}
	if n := testenv.TopicRecords(ctx, brokers, topic); n != 6 {
		t.Fatalf("topic holds %d records after the refused batch, want 6", n)
	}
}

// Two sessions with one transactional id (an old pgcdc process that froze, and the one that took
// over): once the new session wrote to a partition, the old one's next write there is refused with a
// FencedError, and the partition holds the old session's earlier batch, then the new one's, only.
func TestFencedProducerIsFencedByANewSession(t *testing.T) {
	brokers, topic := fencedTopic(t, 1)
	a := startFenced(t, brokers, topic, "none")
	if err := produce(a, topic, 0, "a1"); err != nil {
		t.Fatal(err)
	}
	b := startFenced(t, brokers, topic, "none")
	t.Logf("session A: producer id %d epoch %d; session B: producer id %d epoch %d", a.producerID, a.producerEpoch, b.producerID, b.producerEpoch)
	if b.producerID != a.producerID || b.producerEpoch <= a.producerEpoch {
		t.Fatalf("B got producer %d epoch %d, want A's producer %d with an epoch above %d", b.producerID, b.producerEpoch, a.producerID, a.producerEpoch)
	}
	if err := produce(b, topic, 0, "b1"); err != nil {
		t.Fatal(err)
	}
	err := produce(a, topic, 0, "a2")
	var fe *FencedError
	if !errors.As(err, &fe) {
		t.Fatalf("A's write after B's: %v, want a FencedError", err)
	}
	if fe.Topic != topic || fe.Partition != 0 || fe.ProducerEpoch != a.producerEpoch || fe.TransactionalID != topic {
		t.Fatalf("FencedError %+v", fe)
	}
	t.Logf("A's write: %v", err)
	if perm := classify(topic, 0, err); perm == nil || !errors.As(perm, &fe) {
		t.Fatalf("classify(%v) = %v, want a permanent error unwrapping to the FencedError", err, perm)
	}
	checkPartition(t, brokers, topic, 0, 2, "a1", "b1")
}

// The same through a Sink: its FatalErr is the FencedError, and what it had acknowledged before
// stays the only record of the old session.
func TestFencedSinkStopsWhenAnotherSessionTookOver(t *testing.T) {
	brokers, topic := fencedTopic(t, 1)
	tracker := ack.New(0x10)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := fencedSink(t, brokers, topic, "none", tracker)
	appendOne := func(value string, end uint64) {
		txn := tracker.Begin()
		tracker.Add(txn, 1)
		if err := s.Append(ctx, Record{Topic: topic, Key: []byte("k"), Value: []byte(value), Txn: txn}); err != nil {
			t.Fatal(err)
		}
		tracker.Commit(txn, pglogrepl.LSN(end))
	}
	appendOne("old-1", 0x100)
	if err := tracker.WaitIdle(ctx); err != nil {
		t.Fatalf("first record not acknowledged (sink error %v): %v", s.FatalErr(), err)
	}
	b := startFenced(t, brokers, topic, "none")
	if err := produce(b, topic, 0, "new-1"); err != nil {
		t.Fatal(err)
	}
	appendOne("old-2", 0x200)
	select {
	case <-s.Err():
	case <-ctx.Done():
		t.Fatal("the sink did not fail after another session took over")
	}
	var fe *FencedError
	if err := s.FatalErr(); !errors.As(err, &fe) {
		t.Fatalf("FatalErr = %v, want a FencedError", err)
	}
	t.Logf("FatalErr: %v", s.FatalErr())
	if got := tracker.Safe(); got != 0x100 {
		t.Fatalf("safe LSN %s, want 0/100: the fenced record must not become confirmable", got)
	}
	checkPartition(t, brokers, topic, 0, 2, "old-1", "new-1")
}

// The broker fences per partition, and only once the new epoch has written there: an old session's
// write to a partition the new session has not written to yet is accepted. That is harmless for
// pgcdc: the new process streams again from the slot's confirmed position, which the old one never
// confirmed past anything it still had in flight (it lost the slot when the new one took it), so the
// new process re-publishes every change the old one can still write, and on each partition its copies
// come after whatever the old one wrote there before it was fenced. The last record of every key is
// therefore the new process's, and the key's final state right.
func TestFencedProducerIsFencedPerPartition(t *testing.T) {
	brokers, topic := fencedTopic(t, 2)
	a := startFenced(t, brokers, topic, "none")
	if err := produce(a, topic, 0, "a1"); err != nil {
		t.Fatal(err)
	}
	b := startFenced(t, brokers, topic, "none")
	if err := produce(a, topic, 1, "a2"); err != nil {
		t.Fatalf("A's first write to partition 1, where B has not written: %v, want it accepted", err)
	}
	if err := produce(b, topic, 1, "b1"); err != nil {
		t.Fatal(err)
	}
	var fe *FencedError
	if err := produce(a, topic, 1, "a3"); !errors.As(err, &fe) {
		t.Fatalf("A's write to partition 1 after B's: %v, want a FencedError", err)
	}
	// Partition 0: B has not written there, so A still can; fenced as soon as B has.
	if err := produce(a, topic, 0, "a4"); err != nil {
		t.Fatalf("A's write to partition 0, where B has not written: %v, want it accepted", err)
	}
	if err := produce(b, topic, 0, "b2"); err != nil {
		t.Fatal(err)
	}
	if err := produce(a, topic, 0, "a5"); !errors.As(err, &fe) {
		t.Fatalf("A's write to partition 0 after B's: %v, want a FencedError", err)
	}
	checkPartition(t, brokers, topic, 0, 5, "a1", "a4", "b2")
	checkPartition(t, brokers, topic, 1, 5, "a2", "b1")
}

// The limit of the fencing, measured: a partition's leader forgets a producer id that has not written
// there for producer.id.expiration.ms (broker setting, default 1 day), and then accepts a batch of
// any epoch and sequence from it as from a new producer. An old session that thaws after a freeze
// longer than that can therefore write to a partition the new session has not written to for as long,
// after the new session's copies there. The fence only holds for freezes shorter than
// producer.id.expiration.ms; a longer one must be caught before the write (the standby lease: a
// process that cannot prove it still holds it stops publishing). The broker here forgets after 2 s.
func TestFencedOldSessionAfterProducerStateExpiry(t *testing.T) {
	testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	k, err := testenv.StartKafka(ctx, testenv.KafkaOptions{Settings: map[string]string{
		"producer.id.expiration.ms":                "2000",
		"producer.id.expiration.check.interval.ms": "500",
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	brokers := []string{k.Addr()}
	topic := testenv.UniqueName(t, "fenced")
	testenv.CreateTopic(t, brokers, topic, 1)
	a := startFenced(t, brokers, topic, "none")
	if err := produce(a, topic, 0, "a1"); err != nil {
		t.Fatal(err)
	}
	b := startFenced(t, brokers, topic, "none")
	if err := produce(b, topic, 0, "b1"); err != nil {
		t.Fatal(err)
	}
	var fe *FencedError
	if err := produce(a, topic, 0, "a2"); !errors.As(err, &fe) {
		t.Fatalf("A's write right after B's: %v, want a FencedError", err)
	}
	// Once the leader forgot the producer id, A's very same batch is accepted.
	started := time.Now()
	for attempt := 0; ; attempt++ {
		err := produce(a, topic, 0, "a2")
		if err == nil {
			t.Logf("A's old-epoch batch accepted %.1f s after B's write (%d refused attempts before)", time.Since(started).Seconds(), attempt)
			break
		}
		if !errors.As(err, &fe) {
			t.Fatalf("A's write: %v, want a FencedError until the producer state expires", err)
		}
		if time.Since(started) > time.Minute {
			t.Fatalf("A's old-epoch batch still refused after %s: the broker did not forget the producer id", time.Since(started))
		}
		time.Sleep(200 * time.Millisecond)
	}
	checkPartition(t, brokers, topic, 0, 3, "a1", "b1", "a2")
}
