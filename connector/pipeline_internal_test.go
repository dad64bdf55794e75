package connector

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/rs/zerolog"

	pg "github.com/pgcdc/pgcdc/internal/pgoutputtest"
	"github.com/pgcdc/pgcdc/pkg/ack"
	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
	"github.com/pgcdc/pgcdc/pkg/route"
)

// memSink keeps appended records in memory; a test acknowledges them through the tracker. While
// hold is set, Append blocks until its context ends (a stalled broker).
type memSink struct {
	mu       sync.Mutex
	recs     []kafkasink.Record
	hold     bool // Append blocks until its context ends
	held     bool // between Hold and Release
	heldRecs int  // records appended while held
}

func (s *memSink) Hold() {
	s.mu.Lock()
	s.held = true
	s.mu.Unlock()
}

func (s *memSink) Release() {
	s.mu.Lock()
	s.held = false
	s.mu.Unlock()
}

func (s *memSink) Append(ctx context.Context, rec kafkasink.Record) error {
	s.mu.Lock()
	hold := s.hold
	if !hold {
		s.recs = append(s.recs, rec)
		if s.held {
			s.heldRecs++
		}
	}
	s.mu.Unlock()
	if hold {
		<-ctx.Done()
		return context.Cause(ctx)
	}
	return nil
}

// ackAll acknowledges every record appended so far, as Kafka would.
func (s *memSink) ackAll(tr *ack.Tracker) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.recs {
		tr.Ack(r.Txn, 1)
	}
	n := len(s.recs)
	s.recs = nil
	return n
}

type oneTable struct{}

func (oneTable) Describe(context.Context, uint32) (decode.CatalogTable, error) {
	return decode.CatalogTable{Schema: "public", Name: "t", Key: []string{"id"}, PrimaryKey: true,
		Columns: []decode.CatalogColumn{{Name: "id", TypeOID: 23, TypeName: "int4", NotNull: true}}}, nil
}

func (oneTable) DescribeType(context.Context, uint32) (decode.CatalogType, error) {
	return decode.CatalogType{}, errors.New("no types")
}

var (
	tCols = []pg.Col{{Name: "id", OID: 23, TypeMod: -1, Key: true}}
	ts    = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
)

func newTestPipeline(t *testing.T) (*pipeline, *memSink, *ack.Tracker) {
	t.Helper()
	o := route.Options{Event: event.DefaultOptions("app", "db", "test"), Messages: true, Log: zerolog.Nop()}
	r, err := route.New(o)
	if err != nil {
		t.Fatal(err)
	}
	tr := ack.New(50)
	s := &memSink{}
	return &pipeline{dec: decode.NewDecoder(decode.NewRelations(oneTable{}), nil), router: r, sink: s, tracker: tr}, s, tr
}

func data(lsn pglogrepl.LSN, b []byte) pgsource.Message {
	return pgsource.Message{Kind: pgsource.MessageData, LSN: lsn, Data: b}
}

// txn is one transaction of n inserts starting at lsn, committing (its end) at lsn+100.
func txn(lsn pglogrepl.LSN, xid uint32, ids ...string) []pgsource.Message {
	out := []pgsource.Message{data(lsn, pg.Begin(uint64(lsn)+100, ts, xid)), data(lsn+1, pg.Relation(0, 1, "public", "t", 'd', tCols...))}
	for i, id := range ids {
		out = append(out, data(lsn+2+pglogrepl.LSN(i), pg.Insert(0, 1, pg.Texts(id))))
	}
	return append(out, data(lsn+100, pg.Commit(uint64(lsn)+90, uint64(lsn)+100, ts)))
}

func handleAll(t *testing.T, p *pipeline, msgs ...pgsource.Message) {
	t.Helper()
	p.ctx = context.Background()
	for _, m := range msgs {
		if err := p.handle(m); err != nil {
			t.Fatalf("handle %v: %v", m.Kind, err)
		}
	}
}

// The safe position moves only past transactions whose every record the sink acknowledged, and a
// keepalive's WAL end becomes confirmable only when no transaction is open.
func TestPipelineConfirmsOnlyWhatIsAcknowledged(t *testing.T) {
	p, s, tr := newTestPipeline(t)
	steps := []struct {
		name     string
		msgs     []pgsource.Message
		ack      bool
		wantSafe pglogrepl.LSN
		wantRecs int // records acknowledged at this step
	}{
		{"session start", []pgsource.Message{{Kind: pgsource.MessageSession, LSN: 50}}, false, 50, 0},
		{"a committed transaction, not yet acknowledged", txn(100, 7, "1", "2"), false, 50, 0},
		{"acknowledged", nil, true, 200, 2},
		{"a keepalive while idle: confirmable", []pgsource.Message{{Kind: pgsource.MessageKeepalive, LSN: 250}}, false, 250, 0},
		{"a transaction begun, then a keepalive past its commit: not confirmable", append(txn(300, 8, "3")[:3], pgsource.Message{Kind: pgsource.MessageKeepalive, LSN: 900}), true, 250, 1},
		{"its commit, acknowledged", []pgsource.Message{data(400, pg.Commit(390, 400, ts))}, true, 400, 0},
		{"a keepalive behind unacknowledged work waits for it", append(txn(500, 9, "4"), pgsource.Message{Kind: pgsource.MessageKeepalive, LSN: 650}), false, 400, 0},
		{"then both", nil, true, 650, 1},
		{"a non-transactional message is its own transaction", []pgsource.Message{data(700, pg.Message(0, false, 700, "audit", []byte("x")))}, true, 701, 1},
	}
	for _, st := range steps {
		handleAll(t, p, st.msgs...)
		if st.ack {
			if n := s.ackAll(tr); n != st.wantRecs {
				t.Fatalf("%s: %d records acknowledged, want %d", st.name, n, st.wantRecs)
			}
		}
		if got := tr.Safe(); got != st.wantSafe {
			t.Fatalf("%s: safe %s, want %s", st.name, got, st.wantSafe)
		}
	}
}

// A new session discards the transaction the broken one cut off: it comes again, whole, and only
// then becomes confirmable.
// A transaction's records are appended held, from its begin to its commit, so that the sink sends
// them together; after the commit, and for a message outside any transaction, nothing is held.
func TestPipelineHoldsATransactionUntilItsCommit(t *testing.T) {
	p, s, _ := newTestPipeline(t)
	msgs := txn(100, 7, "1", "2", "3")
	handleAll(t, p, msgs[:len(msgs)-1]...)
	if !s.held || s.heldRecs != 3 {
		t.Fatalf("before the commit: held %v, %d records appended held; want true, 3", s.held, s.heldRecs)
	}
	handleAll(t, p, msgs[len(msgs)-1])
	if s.held {
		t.Fatal("the commit did not release the transaction's records")
	}
	handleAll(t, p, data(700, pg.Message(0, false, 700, "audit", []byte("x"))))
	if s.held || s.heldRecs != 3 || len(s.recs) != 4 {
		t.Fatalf("after a non-transactional message: held %v, %d held, %d records; want false, 3, 4", s.held, s.heldRecs, len(s.recs))
	}
	// A session cut short inside a transaction releases what it held.
	handleAll(t, p, txn(800, 8, "4")[:3]...)
	handleAll(t, p, pgsource.Message{Kind: pgsource.MessageSession, LSN: 800})
	if s.held {
		t.Fatal("a new session left the sink held")
	}
}

func TestPipelineSessionDiscardsTheOpenTransaction(t *testing.T) {
	p, s, tr := newTestPipeline(t)
	whole := txn(100, 7, "1", "2")
	handleAll(t, p, pgsource.Message{Kind: pgsource.MessageSession, LSN: 50})
	handleAll(t, p, whole[:3]...) // begin, relation, first insert: the connection breaks
	s.ackAll(tr)
	handleAll(t, p, pgsource.Message{Kind: pgsource.MessageSession, LSN: 50})
	if !tr.Idle() {
		t.Fatal("the cut-off transaction is still tracked")
	}
	handleAll(t, p, whole...)
	if n := s.ackAll(tr); n != 2 {
		t.Fatalf("%d records after the reconnect, want the whole transaction (2)", n)
	}
	if tr.Safe() != 200 {
		t.Fatalf("safe %s, want 0/C8", tr.Safe())
	}
}

// A stop requested in the middle of a transaction finishes it; one requested between
// transactions stops at once.
func TestPipelineStopsAtATransactionBoundary(t *testing.T) {
	p, s, _ := newTestPipeline(t)
	in := make(chan pgsource.Message, 100)
	soft, stop := context.WithCancel(context.Background())
	whole := txn(100, 7, "1", "2", "3")
	for _, m := range whole[:3] {
		in <- m
	}
	done := make(chan error, 1)
	go func() { done <- p.run(soft, context.Background(), in) }()
	// Wait until the pipeline is inside the transaction, then ask it to stop.
	deadline := time.Now().Add(5 * time.Second)
	for len(in) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	stop()
	select {
	case err := <-done:
		t.Fatalf("the pipeline stopped (%v) in the middle of a transaction", err)
	case <-time.After(100 * time.Millisecond):
	}
	for _, m := range whole[3:] {
		in <- m
	}
	in <- data(300, pg.Begin(400, ts, 8)) // the next transaction is not started
	select {
	case err := <-done:
		if !errors.Is(err, errStopped) {
			t.Fatalf("run = %v, want errStopped", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the pipeline did not stop after the transaction's commit")
	}
	if len(s.recs) != 3 {
		t.Fatalf("%d records, want the 3 of the finished transaction", len(s.recs))
	}
	if len(in) != 1 {
		t.Fatalf("the pipeline took %d messages past the commit", 1-len(in))
	}
}

// A hard stop unblocks a pipeline waiting for room in the sink (a stalled broker), and the run
// ends with its cause.
func TestPipelineHardStopWhileTheSinkIsStalled(t *testing.T) {
	p, s, tr := newTestPipeline(t)
	s.hold = true
	in := make(chan pgsource.Message, 100)
	for _, m := range txn(100, 7, "1") {
		in <- m
	}
	cause := errors.New("shutdown timeout")
	hard, stop := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.run(context.Background(), hard, in) }()
	time.Sleep(50 * time.Millisecond)
	stop(cause)
	select {
	case err := <-done:
		if !errors.Is(err, cause) {
			t.Fatalf("run = %v, want the hard stop's cause", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the pipeline stayed blocked in the sink after a hard stop")
	}
	if tr.Safe() != 50 {
		t.Fatalf("safe moved to %s although nothing was acknowledged", tr.Safe())
	}
}

// Errors name what went wrong and where.
func TestPipelineErrors(t *testing.T) {
	p, _, _ := newTestPipeline(t)
	p.ctx = context.Background()
	err := p.handle(data(0x1_0000_0000, []byte{'I', 0}))
	if err == nil || !strings.Contains(err.Error(), "LSN 1/0") {
		t.Fatalf("malformed message: %v", err)
	}
	if err := p.handle(pgsource.Message{Kind: 99}); err == nil {
		t.Fatal("unknown message kind accepted")
	}
}
