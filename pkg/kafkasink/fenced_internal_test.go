package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

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
