package kafkasink

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/pkg/ack"
)

// scriptedProducer answers Produce with the scripted errors in turn, then with success, and
// records every batch it was given.
type scriptedProducer struct {
	mu      sync.Mutex
	answers []error
	batches [][]Record
}

func (p *scriptedProducer) Produce(_ context.Context, _ string, _ int, batch []queued) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	recs := make([]Record, len(batch))
	for i := range batch {
		recs[i] = batch[i].rec
	}
	p.batches = append(p.batches, recs)
	if len(p.answers) == 0 {
		return nil
	}
	err := p.answers[0]
	p.answers = p.answers[1:]
	return err
}

func (p *scriptedProducer) Close() error { return nil }

func (p *scriptedProducer) calls() [][]Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]Record(nil), p.batches...)
}

// scriptedSink is a Sink over a scripted producer with one known topic of one partition; Append
// starts the real partition goroutine.
func scriptedSink(t *testing.T, p *scriptedProducer, tracker *ack.Tracker) *Sink {
	t.Helper()
	return scriptedSinkWith(t, p, tracker, Options{BatchMaxMessages: 100, BatchMaxBytes: 1 << 20, MaxInFlightBytes: 1 << 20})
}

// scriptedSinkWith is scriptedSink with the given options (its logger silenced).
func scriptedSinkWith(t *testing.T, p *scriptedProducer, tracker *ack.Tracker, opts Options) *Sink {
	t.Helper()
	opts.Logger = zerolog.Nop()
	s := newSink(opts, tracker, p, missingTopics{})
	s.topics.set("t", topicInfo{partitions: []int{0}, maxMessageBytes: 1 << 20})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

func send(t *testing.T, s *Sink, tracker *ack.Tracker, txn ack.TxnID, value string) error {
	t.Helper()
	tracker.Add(txn, 1)
	return s.Append(context.Background(), Record{Topic: "t", Key: []byte(`{"id":1}`), Value: []byte(value), Txn: txn, Table: "public.t", LSN: 0x100})
}

// A topic authorization failure (what an ACL denying WRITE produces) is permanent: the sink fails
// with an error that names the topic and the fix, the batch is not retried, nothing behind it is
// sent, and the tracker never gets an acknowledgement, so the slot is not confirmed past it.
func TestAuthorizationFailureStopsTheSink(t *testing.T) {
	w := &scriptedProducer{answers: []error{kafka.WriteErrors{kafka.TopicAuthorizationFailed}}}
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
		t.Fatal("the sink did not fail on TopicAuthorizationFailed")
	}
	err := s.FatalErr()
	var perm *PermanentError
	if !errors.As(err, &perm) || !errors.Is(err, kafka.TopicAuthorizationFailed) {
		t.Fatalf("FatalErr = %v, want a PermanentError wrapping TopicAuthorizationFailed", err)
	}
	for _, want := range []string{"t partition 0", "failed permanently", "grant this client WRITE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// Later records are refused, and nothing is written after the failure: the partition's writer
	// has ended (the wait below returns only then), having made exactly one attempt.
	txn2 := tracker.Begin()
	if err := send(t, s, tracker, txn2, "second"); !errors.As(err, &perm) {
		t.Fatalf("Append after the failure: %v, want the permanent error", err)
	}
	s.wg.Wait()
	if n := len(w.calls()); n != 1 {
		t.Fatalf("%d write attempts, want 1 (a permanent failure is not retried)", n)
	}
	if got := tracker.Safe(); got != 0x10 {
		t.Fatalf("safe LSN %s, want the start 0/10: the failed transaction must not become confirmable", got)
	}
}

// Errors a broker restart or a slow broker produce are retried with the same batch until it is
// acknowledged; then the transaction becomes confirmable.
func TestTransientWriteErrorsAreRetried(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	answers := []error{io.EOF, refused, context.DeadlineExceeded, kafka.WriteErrors{kafka.NotLeaderForPartition}, kafka.RequestTimedOut}
	w := &scriptedProducer{answers: answers}
	tracker := ack.New(0x10)
	s := scriptedSink(t, w, tracker)
	txn := tracker.Begin()
	if err := send(t, s, tracker, txn, "only"); err != nil {
		t.Fatal(err)
	}
	tracker.Commit(txn, 0x200)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := tracker.WaitIdle(ctx); err != nil {
		t.Fatalf("not acknowledged after %d attempts (sink error %v): %v", len(w.calls()), s.FatalErr(), err)
	}
	if tracker.Safe() != 0x200 {
		t.Fatalf("safe %s, want 0/200", tracker.Safe())
	}
	calls := w.calls()
	if len(calls) != len(answers)+1 {
		t.Fatalf("%d attempts, want %d", len(calls), len(answers)+1)
	}
	for i, b := range calls {
		if len(b) != 1 || string(b[0].Value) != "only" {
			t.Fatalf("attempt %d sent %d records, want the same single record", i, len(b))
		}
	}
	if s.InFlight() != 0 {
		t.Fatalf("%d bytes still in flight after the acknowledgement", s.InFlight())
	}
}
