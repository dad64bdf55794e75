package kafkasink

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol/initproducerid"
	produceapi "github.com/segmentio/kafka-go/protocol/produce"
	"github.com/segmentio/kafka-go/protocol/rawproduce"

	"github.com/pgcdc/pgcdc/internal/testenv"
	"github.com/pgcdc/pgcdc/pkg/ack"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The broker's answers to an idempotent batch, as the fenced producer maps them and the sink's
// classify then treats them.
func TestFencedProducerBrokerErrors(t *testing.T) {
	p := &fencedProducer{transactionalID: "pgcdc-orders", producerEpoch: 7}
	cases := []struct {
		name      string
		answer    error
		success   bool
		fenced    bool
		permanent bool
		says      []string
	}{
		{name: "DUPLICATE_SEQUENCE_NUMBER is the earlier write of this batch", answer: kafka.DuplicateSequenceNumber, success: true},
		{name: "INVALID_PRODUCER_EPOCH", answer: kafka.InvalidProducerEpoch, fenced: true, permanent: true,
			says: []string{`another pgcdc process took over transactional id "pgcdc-orders"`, "producer epoch 7 fenced on t partition 2", "this process stops publishing"}},
		{name: "PRODUCER_FENCED (90)", answer: kafka.Error(90), fenced: true, permanent: true, says: []string{"took over"}},
		{name: "OUT_OF_ORDER_SEQUENCE_NUMBER", answer: kafka.OutOfOrderSequenceNumber, permanent: true, says: []string{"restart pgcdc", "nothing is lost"}},
		{name: "UNKNOWN_PRODUCER_ID", answer: kafka.UnknownProducerId, permanent: true, says: []string{"restart pgcdc", "new session"}},
		{name: "INVALID_PRODUCER_ID_MAPPING", answer: kafka.InvalidProducerIDMapping, permanent: true, says: []string{"restart pgcdc"}},
		{name: "NOT_LEADER_OR_FOLLOWER is retried", answer: kafka.NotLeaderForPartition},
		{name: "NOT_ENOUGH_REPLICAS is retried", answer: kafka.NotEnoughReplicas},
		{name: "TOPIC_AUTHORIZATION_FAILED stays permanent", answer: kafka.TopicAuthorizationFailed, permanent: true, says: []string{"grant this client WRITE"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := p.brokerError("t", 2, c.answer)
			if (err == nil) != c.success {
				t.Fatalf("brokerError(%v) = %v, success want %v", c.answer, err, c.success)
			}
			if err == nil {
				return
			}
			var fe *FencedError
			if errors.As(err, &fe) != c.fenced {
				t.Fatalf("brokerError(%v) = %v (%T), fenced want %v", c.answer, err, err, c.fenced)
			}
			perm := classify("t", 2, fmt.Errorf("write: %w", err))
			if (perm != nil) != c.permanent {
				t.Fatalf("classify(%v) = %v, permanent want %v", err, perm, c.permanent)
			}
			if perm == nil {
				return
			}
			if c.fenced && (!errors.As(perm, &fe) || fe.Topic != "t" || fe.Partition != 2 || fe.ProducerEpoch != 7) {
				t.Fatalf("the permanent error %v does not unwrap to the FencedError", perm)
			}
			if !errors.Is(perm, c.answer) {
				t.Errorf("the permanent error %v does not unwrap to the broker's answer %v", perm, c.answer)
			}
			for _, want := range c.says {
				if !strings.Contains(perm.Error(), want) {
					t.Errorf("message %q lacks %q", perm, want)
				}
			}
		})
	}
}

// A fenced write stops the sink: FatalErr is (unwraps to) the FencedError, the batch is not retried
// and the slot is not confirmed past it.
func TestFencedWriteStopsTheSink(t *testing.T) {
	fenced := &FencedError{TransactionalID: "x", ProducerEpoch: 3, Topic: "t", Partition: 0, Err: kafka.InvalidProducerEpoch}
	w := &scriptedProducer{answers: []error{fenced}}
	tracker := ack.New(0x10)
	s := scriptedSink(t, w, tracker)
	txn := tracker.Begin()
	if err := send(t, s, tracker, txn, "first"); err != nil {
		t.Fatal(err)
	}
	tracker.Commit(txn, 0x200)
	select {
	case <-s.Err():
	case <-time.After(10 * time.Second):
		t.Fatal("the sink did not fail on a fenced write")
	}
	var fe *FencedError
	if err := s.FatalErr(); !errors.As(err, &fe) || fe != fenced {
		t.Fatalf("FatalErr = %v, want the FencedError", err)
	}
	s.wg.Wait()
	if n := len(w.calls()); n != 1 {
		t.Fatalf("%d write attempts, want 1 (a fenced write is not retried)", n)
	}
	if got := tracker.Safe(); got != 0x10 {
		t.Fatalf("safe LSN %s, want the start 0/10", got)
	}
}

// kafka.transactional_id needs acks all: the broker's deduplication and fencing stand on batches
// every in-sync replica has.
func TestTransactionalIDNeedsAcksAll(t *testing.T) {
	for _, acks := range []string{"one", "none"} {
		_, _, _, err := newKafkaGo(context.Background(), Options{Acks: acks, TransactionalID: "x"}, nil)
		if err == nil || !strings.Contains(err.Error(), "kafka.acks") || !strings.Contains(err.Error(), "transactional_id") {
			t.Errorf("acks %s with a transactional id: %v, want an error naming kafka.acks", acks, err)
		}
	}
}

// scriptedTransport answers kafka-go requests with the scripted responses or errors in turn and
// records the base sequence of every record batch it is asked to produce.
type scriptedTransport struct {
	mu        sync.Mutex
	answers   []any // protocol.Message or error
	sequences []int32
	inits     int
}

func (s *scriptedTransport) RoundTrip(_ context.Context, _ net.Addr, req kafka.Request) (kafka.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r := req.(type) {
	case *initproducerid.Request:
		s.inits++
		if r.ProducerID != -1 || r.ProducerEpoch != -1 || r.TransactionalID != "pgcdc-1" {
			return nil, fmt.Errorf("InitProducerID asks for producer %d epoch %d of %q, want -1 -1 pgcdc-1", r.ProducerID, r.ProducerEpoch, r.TransactionalID)
		}
	case *rawproduce.Request:
		var buf bytes.Buffer
		if _, err := r.Topics[0].Partitions[0].RecordSet.WriteTo(&buf); err != nil {
			return nil, err
		}
		s.sequences = append(s.sequences, int32(binary.BigEndian.Uint32(buf.Bytes()[sizePrefix+offBaseSequence:])))
	}
	if len(s.answers) == 0 {
		return nil, errors.New("scriptedTransport: no answer left")
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	if err, ok := a.(error); ok {
		return nil, err
	}
	return a.(kafka.Response), nil
}

func produced(code kafka.Error) *produceapi.Response {
	return &produceapi.Response{Topics: []produceapi.ResponseTopic{{Topic: "t", Partitions: []produceapi.ResponsePartition{{Partition: 0, ErrorCode: int16(code)}}}}}
}

func started(code kafka.Error) *initproducerid.Response {
	return &initproducerid.Response{ErrorCode: int16(code), ProducerID: 42, ProducerEpoch: 3}
}

func TestFencedProducerSession(t *testing.T) {
	opts := Options{TransactionalID: "pgcdc-1", Logger: zerolog.Nop()}
	t.Run("retriable answers and network errors are retried", func(t *testing.T) {
		tr := &scriptedTransport{answers: []any{started(kafka.GroupCoordinatorNotAvailable), io.EOF, started(kafka.ConcurrentTransactions), started(0)}}
		p, err := newFencedProducer(context.Background(), kafka.TCP("x"), tr, opts)
		if err != nil {
			t.Fatal(err)
		}
		if p.producerID != 42 || p.producerEpoch != 3 || tr.inits != 4 {
			t.Fatalf("producer %d epoch %d after %d calls, want 42 3 after 4", p.producerID, p.producerEpoch, tr.inits)
		}
	})
	t.Run("an authorization failure is not", func(t *testing.T) {
		tr := &scriptedTransport{answers: []any{started(kafka.TransactionalIDAuthorizationFailed)}}
		_, err := newFencedProducer(context.Background(), kafka.TCP("x"), tr, opts)
		if !errors.Is(err, kafka.TransactionalIDAuthorizationFailed) || !strings.Contains(err.Error(), "kafka.transactional_id") || !strings.Contains(err.Error(), "TransactionalId") || tr.inits != 1 {
			t.Fatalf("err %v after %d calls, want the authorization failure naming kafka.transactional_id, at once", err, tr.inits)
		}
	})
	t.Run("retried until the context ends", func(t *testing.T) {
		tr := &scriptedTransport{}
		for range 100 {
			tr.answers = append(tr.answers, started(kafka.GroupLoadInProgress))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := newFencedProducer(ctx, kafka.TCP("x"), tr, opts)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, kafka.GroupLoadInProgress) && !strings.Contains(err.Error(), "Load In Progress") {
			t.Fatalf("err %v, want the deadline and the last answer", err)
		}
	})
}

// The sequence number of a partition advances only with an acknowledged batch: a retry carries the
// sequence of the failed attempt; DUPLICATE_SEQUENCE_NUMBER counts as acknowledged.
func TestFencedProducerSequences(t *testing.T) {
	tr := &scriptedTransport{answers: []any{started(0)}}
	p, err := newFencedProducer(context.Background(), kafka.TCP("x"), tr, Options{TransactionalID: "pgcdc-1", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		batch  int
		answer any
		ok     bool
	}{
		{3, produced(0), true},                             // 0..2
		{2, io.EOF, false},                                 // a lost connection: not advanced
		{2, produced(kafka.RequestTimedOut), false},        // the retry: same sequence
		{2, produced(kafka.DuplicateSequenceNumber), true}, // it had been written: 3..4
		{1, produced(kafka.InvalidProducerEpoch), false},   // fenced: not advanced
		{4, produced(0), true},                             // 5..8
	}
	for _, s := range steps {
		tr.mu.Lock()
		tr.answers = append(tr.answers, s.answer)
		tr.mu.Unlock()
		err := p.Produce(context.Background(), "t", 0, batchOf(make([]string, s.batch)...))
		if (err == nil) != s.ok {
			t.Fatalf("answer %v: Produce = %v, success want %v", s.answer, err, s.ok)
		}
	}
	if want := []int32{0, 3, 3, 3, 5, 5}; !slices.Equal(tr.sequences, want) {
		t.Fatalf("base sequences sent %v, want %v", tr.sequences, want)
	}
	if got := p.next[partitionKey{"t", 0}]; got != 9 {
		t.Fatalf("next sequence %d, want 9", got)
	}
	if got := p.next[partitionKey{"t", 1}]; got != 0 {
		t.Fatalf("partition 1's next sequence %d, want 0 (sequences are per partition)", got)
	}
}

// MayWrite is asked before every attempt: once it refuses (ha.enabled: the lease cannot be proven),
// the sink fails with its error and writes nothing more; until then batches go out.
func TestMayWriteWithholdsTheBatch(t *testing.T) {
	errLease := errors.New("lease: no successful heartbeat")
	var refuse atomic.Bool
	w := &scriptedProducer{}
	tracker := ack.New(0x10)
	s := scriptedSink(t, w, tracker)
	s.opts.MayWrite = func() error {
		if refuse.Load() {
			return errLease
		}
		return nil
	}
	txn := tracker.Begin()
	if err := send(t, s, tracker, txn, "allowed"); err != nil {
		t.Fatal(err)
	}
	tracker.Commit(txn, 0x200)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	refuse.Store(true)
	txn = tracker.Begin()
	if err := send(t, s, tracker, txn, "withheld"); err != nil {
		t.Fatal(err)
	}
	tracker.Commit(txn, 0x300)
	select {
	case <-s.Err():
	case <-ctx.Done():
		t.Fatal("the sink did not fail when MayWrite refused")
	}
	if err := s.FatalErr(); !errors.Is(err, errLease) {
		t.Fatalf("FatalErr = %v, want MayWrite's error", err)
	}
	s.wg.Wait()
	if n := len(w.calls()); n != 1 {
		t.Fatalf("%d write attempts, want 1 (only the batch allowed)", n)
	}
	if got := tracker.Safe(); got != 0x200 {
		t.Fatalf("safe LSN %s, want 0/200 (the withheld transaction unconfirmed)", got)
	}
}
