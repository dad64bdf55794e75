package pgsource

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rs/zerolog"
)

// fakePosition is the confirmable position a test sets.
type fakePosition struct {
	mu      sync.Mutex
	safe    pglogrepl.LSN
	changed chan struct{}
}

func newPosition(l pglogrepl.LSN) *fakePosition {
	return &fakePosition{safe: l, changed: make(chan struct{})}
}

func (p *fakePosition) Safe() pglogrepl.LSN {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.safe
}

func (p *fakePosition) Published() pglogrepl.LSN { return p.Safe() }

func (p *fakePosition) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed
}

func (p *fakePosition) set(l pglogrepl.LSN) {
	p.mu.Lock()
	p.safe = l
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// walsender is one fake replication session: the server end of a pipe that speaks enough of the
// protocol for the stream (start-up, START_REPLICATION, COPY both ways).
type walsender struct {
	t        *testing.T
	be       *pgproto3.Backend
	conn     net.Conn
	start    chan string                        // the START_REPLICATION command
	statuses chan pglogrepl.StandbyStatusUpdate // status updates received
	copyDone chan struct{}                      // closed when the client ended the COPY
	refuse   *pgproto3.ErrorResponse            // answer START_REPLICATION with this
	mu       sync.Mutex
}

// fakeServer hands out walsender sessions for each connection the stream opens.
type fakeServer struct {
	t        *testing.T
	sessions chan *walsender
	refuse   []*pgproto3.ErrorResponse // per connection, in order (nil: accept)
	mu       sync.Mutex
}

func newFakeServer(t *testing.T) *fakeServer {
	return &fakeServer{t: t, sessions: make(chan *walsender, 10)}
}

func (f *fakeServer) connect(ctx context.Context) (*pgconn.PgConn, error) {
	// A loopback TCP connection (not net.Pipe): its buffers let the server write while the
	// stream is not reading, as a walsender does.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	server, err := ln.Accept()
	if err != nil {
		return nil, err
	}
	w := &walsender{t: f.t, be: pgproto3.NewBackend(server, server), conn: server, start: make(chan string, 1),
		statuses: make(chan pglogrepl.StandbyStatusUpdate, 100), copyDone: make(chan struct{})}
	f.mu.Lock()
	if len(f.refuse) > 0 {
		w.refuse, f.refuse = f.refuse[0], f.refuse[1:]
	}
	f.mu.Unlock()
	go w.serve()
	cfg, err := pgconn.ParseConfig("host=127.0.0.1 user=pgcdc dbname=app sslmode=disable")
	if err != nil {
		return nil, err
	}
	cfg.DialFunc = func(context.Context, string, string) (net.Conn, error) { return client, nil }
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err == nil {
		f.sessions <- w
	}
	return conn, err
}

func (w *walsender) send(msgs ...pgproto3.BackendMessage) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range msgs {
		w.be.Send(m)
	}
	_ = w.be.Flush()
}

func (w *walsender) serve() {
	if _, err := w.be.ReceiveStartupMessage(); err != nil {
		return
	}
	w.send(&pgproto3.AuthenticationOk{}, &pgproto3.ParameterStatus{Name: "server_version", Value: "15.0"},
		&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 2}}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	msg, err := w.be.Receive()
	if err != nil {
		return
	}
	q, ok := msg.(*pgproto3.Query)
	if !ok {
		return
	}
	w.start <- q.String
	if w.refuse != nil {
		w.send(w.refuse, &pgproto3.ReadyForQuery{TxStatus: 'I'})
		return
	}
	w.send(&pgproto3.CopyBothResponse{})
	for {
		msg, err := w.be.Receive()
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if len(m.Data) > 0 && m.Data[0] == pglogrepl.StandbyStatusUpdateByteID {
				d := m.Data[1:]
				w.statuses <- pglogrepl.StandbyStatusUpdate{
					WALWritePosition: pglogrepl.LSN(binary.BigEndian.Uint64(d)),
					WALFlushPosition: pglogrepl.LSN(binary.BigEndian.Uint64(d[8:])),
					WALApplyPosition: pglogrepl.LSN(binary.BigEndian.Uint64(d[16:])),
				}
			}
		case *pgproto3.CopyDone:
			close(w.copyDone)
			w.send(&pgproto3.CopyDone{}, &pgproto3.CommandComplete{CommandTag: []byte("COPY 0")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
		case *pgproto3.Terminate:
			return
		}
	}
}

// xlog sends a pgoutput message at lsn.
func (w *walsender) xlog(lsn pglogrepl.LSN, data []byte) {
	b := []byte{pglogrepl.XLogDataByteID}
	b = binary.BigEndian.AppendUint64(b, uint64(lsn))
	b = binary.BigEndian.AppendUint64(b, uint64(lsn)+uint64(len(data)))
	b = binary.BigEndian.AppendUint64(b, 0)
	w.send(&pgproto3.CopyData{Data: append(b, data...)})
}

// keepalive sends a primary keepalive with the server's WAL end.
func (w *walsender) keepalive(end pglogrepl.LSN, reply bool) {
	b := []byte{pglogrepl.PrimaryKeepaliveMessageByteID}
	b = binary.BigEndian.AppendUint64(b, uint64(end))
	b = binary.BigEndian.AppendUint64(b, 0)
	r := byte(0)
	if reply {
		r = 1
	}
	w.send(&pgproto3.CopyData{Data: append(b, r)})
}

// statusWith waits for a status update whose flush position is want.
func (w *walsender) statusWith(want pglogrepl.LSN, within time.Duration) pglogrepl.StandbyStatusUpdate {
	w.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case s := <-w.statuses:
			if s.WALFlushPosition == want {
				return s
			}
			if s.WALFlushPosition > want {
				w.t.Fatalf("status update confirmed %s, past %s", s.WALFlushPosition, want)
			}
		case <-deadline:
			w.t.Fatalf("no status update confirming %s within %s", want, within)
		}
	}
}

func testStream(t *testing.T, srv *fakeServer, pos Position, slot SlotInfo, tune func(*StreamOptions)) *Stream {
	o := StreamOptions{Slot: "s", Publication: "p", Database: "app", StatusInterval: time.Hour, ConfirmDelay: 50 * time.Millisecond,
		ConnectTimeout: 5 * time.Second, Log: zerolog.Nop()}
	if tune != nil {
		tune(&o)
	}
	s := NewStream(o, pos)
	s.connect = srv.connect
	s.readSlot = func(context.Context) (SlotInfo, error) {
		if !slot.Exists {
			return slot, ErrSlotMissing
		}
		return slot, nil
	}
	return s
}

var goodSlot = SlotInfo{Name: "s", Exists: true, Plugin: "pgoutput", Database: "app", ConfirmedFlush: 100}

func receive(t *testing.T, out <-chan Message) Message {
	t.Helper()
	select {
	case m := <-out:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message from the stream")
		return Message{}
	}
}

func runStream(t *testing.T, s *Stream, out chan Message) (context.CancelFunc, <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		done <- s.Run(ctx, out)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-ended:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return cancel, done
}

// The stream starts at the newer of the slot's position and the position it is handed, delivers
// copies of the messages in order after a session marker, answers keepalives, confirms a newly
// safe position within ConfirmDelay, and on a stop sends the last position and ends the COPY.
func TestStreamDeliversAndConfirms(t *testing.T) {
	srv := newFakeServer(t)
	pos := newPosition(150)
	s := testStream(t, srv, pos, goodSlot, func(o *StreamOptions) { o.Protocol2 = true })
	out := make(chan Message, 10)
	cancel, done := runStream(t, s, out)
	w := <-srv.sessions
	q := <-w.start
	for _, want := range []string{`START_REPLICATION SLOT s LOGICAL 0/96`, `proto_version '2'`, `streaming 'true'`, `publication_names '"p"'`, `messages 'true'`} {
		if !strings.Contains(q, want) {
			t.Errorf("START_REPLICATION %q lacks %q", q, want)
		}
	}
	if m := receive(t, out); m.Kind != MessageSession || m.LSN != 150 {
		t.Fatalf("first message %+v, want the session start at 0/96", m)
	}
	w.xlog(200, []byte("first"))
	w.xlog(210, []byte("second"))
	for _, want := range []struct {
		lsn  pglogrepl.LSN
		data string
	}{{200, "first"}, {210, "second"}} {
		m := receive(t, out)
		if m.Kind != MessageData || m.LSN != want.lsn || string(m.Data) != want.data {
			t.Fatalf("message %+v, want data %q at %s", m, want.data, want.lsn)
		}
	}
	w.keepalive(300, false)
	if m := receive(t, out); m.Kind != MessageKeepalive || m.LSN != 300 {
		t.Fatalf("message %+v, want the keepalive's WAL end 0/12C", m)
	}
	began := time.Now()
	pos.set(216)
	st := w.statusWith(216, 5*time.Second)
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("a newly safe position took %s to be confirmed", took)
	}
	if st.WALWritePosition != 216 || st.WALApplyPosition != 216 {
		t.Errorf("status update %+v: write must be what was received, apply the flush", st)
	}
	w.keepalive(300, true) // reply requested: answered at once
	w.statusWith(216, 5*time.Second)
	pos.set(300)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v after a stop", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the stop")
	}
	w.statusWith(300, time.Second)
	select {
	case <-w.copyDone:
	case <-time.After(time.Second):
		t.Fatal("the stream did not end the COPY after its last status update")
	}
	if flush, _ := s.Confirmed(); flush != 300 {
		t.Errorf("Confirmed() = %s, want 0/12C", flush)
	}
}

// While nobody takes its messages the stream stops reading but keeps sending status updates, so
// the walsender does not time out, and confirms the position as it moves.
func TestStreamKeepsConfirmingUnderBackpressure(t *testing.T) {
	srv := newFakeServer(t)
	pos := newPosition(100)
	s := testStream(t, srv, pos, goodSlot, func(o *StreamOptions) {
		o.StatusInterval = 100 * time.Millisecond
		o.ConfirmDelay = 20 * time.Millisecond
	})
	out := make(chan Message) // unbuffered: the receiver takes only the session marker
	runStream(t, s, out)
	w := <-srv.sessions
	receive(t, out)
	w.xlog(200, []byte("blocked"))
	for i := 0; i < 3; i++ {
		w.statusWith(100, 5*time.Second)
	}
	pos.set(150)
	w.statusWith(150, 5*time.Second)
	if m := receive(t, out); string(m.Data) != "blocked" {
		t.Fatalf("message %+v after the backpressure", m)
	}
}

// StopReading: no more data is delivered, the position is still confirmed as it moves.
func TestStreamStopReading(t *testing.T) {
	srv := newFakeServer(t)
	pos := newPosition(100)
	s := testStream(t, srv, pos, goodSlot, nil)
	out := make(chan Message, 10)
	cancel, done := runStream(t, s, out)
	w := <-srv.sessions
	receive(t, out)
	s.StopReading()
	time.Sleep(100 * time.Millisecond)
	w.xlog(200, []byte("after the stop"))
	pos.set(180)
	w.statusWith(180, 5*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for len(out) > 0 {
		if m := <-out; m.Kind == MessageData {
			t.Fatalf("data delivered after StopReading: %+v", m)
		}
	}
}

// A broken connection is transient: the stream reconnects, from the position it was handed, and
// marks the new session; the hook hears of it.
func TestStreamReconnects(t *testing.T) {
	srv := newFakeServer(t)
	pos := newPosition(100)
	var reconnects int
	var mu sync.Mutex
	s := testStream(t, srv, pos, goodSlot, func(o *StreamOptions) {
		o.OnReconnect = func(error) { mu.Lock(); reconnects++; mu.Unlock() }
	})
	out := make(chan Message, 10)
	runStream(t, s, out)
	w := <-srv.sessions
	<-w.start
	receive(t, out)
	w.xlog(200, []byte("x"))
	receive(t, out)
	pos.set(250)
	w.conn.Close() // the server goes away
	w2 := <-srv.sessions
	if q := <-w2.start; !strings.Contains(q, "LOGICAL 0/FA") {
		t.Fatalf("reconnect started with %q, want at the safe position 0/FA", q)
	}
	if m := receive(t, out); m.Kind != MessageSession || m.LSN != 250 {
		t.Fatalf("after the reconnect: %+v, want a session marker at 0/FA", m)
	}
	mu.Lock()
	defer mu.Unlock()
	if reconnects != 1 {
		t.Fatalf("%d reconnects reported, want 1", reconnects)
	}
}

// Failures no reconnect cures end Run with what to do; a slot held by another process is waited for.
func TestStreamFailures(t *testing.T) {
	publicationMissing := &pgproto3.ErrorResponse{Severity: "ERROR", Code: "42704", Message: `publication "p" does not exist`}
	slotActive := &pgproto3.ErrorResponse{Severity: "ERROR", Code: "55006", Message: `replication slot "s" is active for PID 42`}
	cases := []struct {
		name   string
		slot   SlotInfo
		refuse []*pgproto3.ErrorResponse
		want   []string // in Run's error; nil: Run keeps trying
	}{
		{"slot dropped", SlotInfo{Name: "s"}, nil, []string{"does not exist", "dropped while pgcdc ran", "Recovering from a lost slot"}},
		{"slot of another plugin", SlotInfo{Name: "s", Exists: true, Plugin: "wal2json", Database: "app", ConfirmedFlush: 1}, nil, []string{"wal2json", "postgres.slot"}},
		{"slot invalidated", SlotInfo{Name: "s", Exists: true, Plugin: "pgoutput", Database: "app", ConfirmedFlush: 1, WALStatus: "lost"}, nil, []string{"invalidated", "re-snapshot"}},
		{"publication missing at the position", goodSlot, []*pgproto3.ErrorResponse{publicationMissing}, []string{`publication "p" does not exist`, "Recover: recreate the publication"}},
		{"slot held by another process", goodSlot, []*pgproto3.ErrorResponse{slotActive, slotActive}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := newFakeServer(t)
			srv.refuse = c.refuse
			reconnected := make(chan error, 10)
			s := testStream(t, srv, newPosition(0), c.slot, func(o *StreamOptions) { o.OnReconnect = func(err error) { reconnected <- err } })
			out := make(chan Message, 10)
			_, done := runStream(t, s, out)
			if c.want == nil {
				select {
				case err := <-reconnected:
					var held *SlotInUseError
					if !errors.As(err, &held) || !strings.Contains(err.Error(), "standby pgcdc waits") {
						t.Fatalf("reconnect after %v, want a SlotInUseError", err)
					}
				case err := <-done:
					t.Fatalf("Run ended (%v) on a slot in use: it must wait", err)
				case <-time.After(10 * time.Second):
					t.Fatal("no retry on a slot in use")
				}
				return
			}
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("Run returned nil")
				}
				for _, w := range c.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
			case err := <-reconnected:
				t.Fatalf("retried a permanent failure: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not end")
			}
		})
	}
}

func TestSlotInfoLag(t *testing.T) {
	s := SlotInfo{ServerWALEnd: 1000, ConfirmedFlush: 400, RestartLSN: 100}
	if s.LagBytes() != 600 || s.RetainedBytes() != 900 {
		t.Fatalf("lag %d retained %d", s.LagBytes(), s.RetainedBytes())
	}
	if (SlotInfo{ServerWALEnd: 1000}).LagBytes() != 0 || (SlotInfo{ServerWALEnd: 5, ConfirmedFlush: 9}).LagBytes() != 0 {
		t.Fatal("lag of an unknown or newer position must be 0")
	}
}

// A position is confirmed only after BeforeConfirm recorded it; when it cannot be recorded (e.g. a
// PostgreSQL shutting down refuses the write) the session ends instead of lingering: the walsender
// of a shutting-down server waits for its client to confirm everything or to go.
func TestStreamRecordsBeforeConfirming(t *testing.T) {
	srv := newFakeServer(t)
	pos := newPosition(100)
	var mu sync.Mutex
	var recorded []pglogrepl.LSN
	fail := false
	reconnected := make(chan error, 10)
	s := testStream(t, srv, pos, goodSlot, func(o *StreamOptions) {
		o.BeforeConfirm = func(_ context.Context, _ *pgx.Conn, flush pglogrepl.LSN) (pglogrepl.LSN, error) {
			mu.Lock()
			defer mu.Unlock()
			if fail {
				return 0, errors.New("the database system is shutting down")
			}
			recorded = append(recorded, flush)
			return flush, nil
		}
		o.OnReconnect = func(err error) { reconnected <- err }
	})
	s.sql = nil
	s.connectSQL = func(context.Context) (*pgx.Conn, error) { return nil, nil }
	out := make(chan Message, 10)
	runStream(t, s, out)
	w := <-srv.sessions
	receive(t, out)
	pos.set(150)
	w.statusWith(150, 5*time.Second)
	mu.Lock()
	if len(recorded) == 0 || recorded[len(recorded)-1] != 150 {
		t.Fatalf("recorded %v before confirming 0/96", recorded)
	}
	fail = true
	mu.Unlock()
	pos.set(200)
	select {
	case err := <-reconnected:
		if !strings.Contains(err.Error(), "record the position 0/C8") {
			t.Fatalf("session ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the session went on although the position could not be recorded")
	}
	for len(w.statuses) > 0 {
		if st := <-w.statuses; st.WALFlushPosition > 150 {
			t.Fatalf("confirmed %s without a record", st.WALFlushPosition)
		}
	}
}

// A session that resumes past the slot's confirmed position (Kafka acknowledged more than the last
// session confirmed: BeforeConfirm held it back at the record) confirms the resume position only
// through BeforeConfirm: the server never gets a flush position the record does not cover.
func TestStreamResumePositionGoesThroughBeforeConfirm(t *testing.T) {
	srv := newFakeServer(t)
	pos := newPosition(250)
	var mu sync.Mutex
	var asked []pglogrepl.LSN
	s := testStream(t, srv, pos, goodSlot, func(o *StreamOptions) {
		o.BeforeConfirm = func(_ context.Context, _ *pgx.Conn, flush pglogrepl.LSN) (pglogrepl.LSN, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, flush)
			return min(flush, 180), nil // the record covers 180: hold there
		}
	})
	s.sql = nil
	s.connectSQL = func(context.Context) (*pgx.Conn, error) { return nil, nil }
	out := make(chan Message, 10)
	runStream(t, s, out)
	w := <-srv.sessions
	if q := <-w.start; !strings.Contains(q, "LOGICAL 0/FA") {
		t.Fatalf("started with %q, want at the acknowledged position 0/FA", q)
	}
	receive(t, out)
	w.keepalive(250, true)
	w.statusWith(180, 5*time.Second) // fails on a status update past 180
	mu.Lock()
	defer mu.Unlock()
	if len(asked) == 0 || asked[0] != 250 {
		t.Fatalf("BeforeConfirm asked for %v, want 0/FA first", asked)
	}
}

// A server that keeps asking for a reply the stream cannot give (its WAL end is past what Kafka
// acknowledged) is waiting for that position, as a walsender of a server shutting down does: the
// session ends, so that the shutdown does not wait for Kafka, and a new one follows. Requests the
// stream can satisfy, or a few unsatisfied ones, keep the session.
func TestStreamEndsSessionWhenServerWaits(t *testing.T) {
	srv := newFakeServer(t)
	s := testStream(t, srv, newPosition(100), goodSlot, func(o *StreamOptions) { o.Log = zerolog.New(zerolog.NewTestWriter(t)) })
	out := make(chan Message, 1000)
	runStream(t, s, out)
	w := <-srv.sessions
	<-w.start
	for i := 0; i < 3*serverWaitingAsks; i++ {
		w.keepalive(100, true) // confirmable: the stream is at 100
	}
	for i := 0; i < serverWaitingAsks/2; i++ {
		w.keepalive(500, true)
	}
	select {
	case <-srv.sessions:
		t.Fatal("the session ended on requests it could satisfy, or on a few it could not")
	case <-time.After(time.Second):
	}
	for i := 0; i < serverWaitingAsks; i++ {
		w.keepalive(500, true)
	}
	select {
	case w2 := <-srv.sessions:
		<-w2.start
	case <-time.After(10 * time.Second):
		t.Fatalf("%d unsatisfiable requests for a reply in a row did not end the session", serverWaitingAsks)
	}
}
