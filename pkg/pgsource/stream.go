package pgsource

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rs/zerolog"

	"github.com/pgcdc/pgcdc/internal/retry"
)

// MessageKind says what a Message carries.
type MessageKind uint8

const (
	// MessageSession starts a replication session at LSN: whatever an earlier session left half
	// done (a transaction without its commit) will come again, whole.
	MessageSession MessageKind = iota + 1
	// MessageData is one pgoutput message that starts at WAL position LSN.
	MessageData
	// MessageKeepalive reports the server's WAL end (LSN): everything before it that is decodable
	// has been sent, so once the messages before it are all acknowledged and no transaction is
	// open, it is confirmable.
	MessageKeepalive
)

// Message is one item of the replication stream, in WAL order.
type Message struct {
	Kind MessageKind
	LSN  pglogrepl.LSN
	Data []byte // MessageData: the pgoutput message, owned by the receiver
}

// Position is what the stream confirms: the newest LSN Kafka holds everything up to (an
// *ack.Tracker). The stream never computes it.
type Position interface {
	// Safe is the newest confirmable position.
	Safe() pglogrepl.LSN
	// Published is the newest confirmable position reached by a transaction that published
	// records: it is confirmed within ConfirmDelay. A position that moved only by WAL nothing was
	// published for (keepalives, heartbeats, other databases) waits for the status interval.
	Published() pglogrepl.LSN
	// Changed is closed at the next change of the position.
	Changed() <-chan struct{}
}

// StreamOptions configure a Stream.
type StreamOptions struct {
	ConnString  string // with the password: never logged
	Slot        string
	Publication string
	Database    string // the slot must belong to it
	// Protocol2 asks for protocol version 2 with streaming of in-progress transactions.
	Protocol2 bool
	// StatusInterval: a status update is sent at least this often (default 10s), and never less
	// often than a third of wal_sender_timeout (WALSenderTimeout), so the walsender never times out,
	// even while the stream is not being read (backpressure).
	StatusInterval   time.Duration
	WALSenderTimeout time.Duration
	// ConfirmDelay bounds how long a newly confirmable position waits before a status update
	// carries it (default 1s).
	ConfirmDelay   time.Duration
	ConnectTimeout time.Duration // bound of one connection and START_REPLICATION (default 30s)
	// BeforeConfirm, when set, is called before a status update confirms a position newer than
	// the last one confirmed, on the stream's own SQL connection (the recorded position of
	// docs/failover.md). It returns the position that may be confirmed (at most flush). When it
	// fails, the session ends (a reconnect follows; a permanent error, such as a privilege lost,
	// ends Run) and nothing past the record is confirmed.
	BeforeConfirm func(ctx context.Context, conn *pgx.Conn, flush pglogrepl.LSN) (pglogrepl.LSN, error)
	Log           zerolog.Logger
	// Hooks for metrics; each may be nil. They are called from the stream's goroutine.
	OnStreaming func(on bool)
	OnStatus    func(flush, serverEnd pglogrepl.LSN)
	OnReconnect func(err error)
}

// Stream is the replication connection of one slot: it starts replication at the confirmable
// position, delivers the pgoutput messages in order, answers keepalives, sends status updates
// with the position it is handed, and reconnects after transient failures.
//
// One goroutine (Run's) owns the connection: it alone reads and writes it (pgconn is not safe for a
// concurrent send and receive). While the receiver of Run's channel does not keep up, Run stops
// reading but keeps sending status updates, so backpressure never lets the walsender time out.
type Stream struct {
	opts      StreamOptions
	pos       Position
	stopRead  chan struct{}
	stopOnce  sync.Once
	sql       *pgx.Conn // slot state; Run's goroutine only
	confirmed atomic.Uint64
	serverEnd atomic.Uint64

	// Seams for tests (nil: the real server).
	readSlot   func(ctx context.Context) (SlotInfo, error)
	connect    func(ctx context.Context) (*pgconn.PgConn, error)
	connectSQL func(ctx context.Context) (*pgx.Conn, error)
}

// NewStream prepares a stream that confirms pos.
func NewStream(opts StreamOptions, pos Position) *Stream {
	if opts.StatusInterval <= 0 {
		opts.StatusInterval = 10 * time.Second
	}
	if t := opts.WALSenderTimeout; t > 0 && t/3 < opts.StatusInterval {
		opts.StatusInterval = t / 3
	}
	if opts.ConfirmDelay <= 0 {
		opts.ConfirmDelay = time.Second
	}
	if opts.ConfirmDelay > opts.StatusInterval {
		opts.ConfirmDelay = opts.StatusInterval
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 30 * time.Second
	}
	return &Stream{opts: opts, pos: pos, stopRead: make(chan struct{})}
}

// StopReading makes Run stop reading WAL: from now on it only sends status updates, with the
// position as it moves, until Run's context ends. A clean stop calls it once the pipeline is at a
// transaction boundary, then waits for Kafka to acknowledge what is in flight.
func (s *Stream) StopReading() { s.stopOnce.Do(func() { close(s.stopRead) }) }

// Confirmed returns the last position sent to the server as flushed, and the server's WAL end.
func (s *Stream) Confirmed() (flush, serverEnd pglogrepl.LSN) {
	return pglogrepl.LSN(s.confirmed.Load()), pglogrepl.LSN(s.serverEnd.Load())
}

// Run streams into out until ctx ends (it then sends a last status update with the position and
// returns nil) or a failure no reconnect can cure (returned, with what to do). Every session
// starts with a MessageSession; transient failures (a restart, a dropped connection, a terminated
// walsender, a slot another process holds) are logged and retried with backoff.
func (s *Stream) Run(ctx context.Context, out chan<- Message) error {
	defer func() {
		if s.sql != nil {
			s.sql.Close(context.Background())
		}
	}()
	b := retry.New(500*time.Millisecond, 30*time.Second)
	for {
		started := time.Now()
		err := s.session(ctx, out)
		if err == nil {
			return nil
		}
		if perm := s.permanent(err); perm != nil {
			return perm
		}
		if ctx.Err() != nil || s.stopping() {
			// A stop is under way: nothing more will be read, and the position cannot be sent
			// without a session. What is acknowledged but not confirmed is sent again next time.
			s.opts.Log.Warn().Err(err).Msg("replication connection lost during the stop; the last position was not confirmed")
			return nil
		}
		if time.Since(started) > time.Minute {
			b.Reset()
		}
		wait := b.Next()
		ev := s.opts.Log.Warn().Err(err).Float64("retry_in_s", wait.Seconds())
		var held *SlotInUseError
		if errors.As(err, &held) {
			ev.Msg("the replication slot is held by another process; waiting for it")
		} else {
			ev.Msg("replication stream broke; reconnecting")
		}
		if s.opts.OnReconnect != nil {
			s.opts.OnReconnect(err)
		}
		if retry.Sleep(ctx, wait) != nil {
			return nil
		}
	}
}

func (s *Stream) stopping() bool {
	select {
	case <-s.stopRead:
		return true
	default:
		return false
	}
}

// fatalStream marks failures of the stream no reconnect cures (a protocol violation, a slot that
// cannot serve pgcdc).
type fatalStream struct{ err error }

func (e *fatalStream) Error() string { return e.err.Error() }
func (e *fatalStream) Unwrap() error { return e.err }

// permanent returns err, with what to do, when no reconnect can cure it; nil otherwise.
func (s *Stream) permanent(err error) error {
	var f *fatalStream
	if errors.As(err, &f) {
		return f.err
	}
	if IsPermanent(err) {
		return ExplainReplicationError(err, s.opts.Publication)
	}
	return nil
}

// slotState reads the slot on the stream's own SQL connection, reconnecting it when it broke.
func (s *Stream) slotState(ctx context.Context) (SlotInfo, error) {
	if s.readSlot != nil {
		return s.readSlot(ctx)
	}
	for attempt := 0; ; attempt++ {
		if s.sql == nil || s.sql.IsClosed() {
			conn, err := ConnectSQL(ctx, s.opts.ConnString)
			if err != nil {
				return SlotInfo{}, err
			}
			s.sql = conn
		}
		slot, err := ReadSlot(ctx, s.sql, s.opts.Slot)
		if err != nil && s.sql.IsClosed() && attempt == 0 {
			continue // the connection broke with the server (a restart): reconnect it now
		}
		return slot, err
	}
}

// session runs one replication connection. It returns nil when ctx ended and the last status
// update was sent.
func (s *Stream) session(ctx context.Context, out chan<- Message) error {
	cctx, cancel := context.WithTimeout(ctx, s.opts.ConnectTimeout)
	defer cancel()
	slot, err := s.slotState(cctx)
	if err != nil {
		if errors.Is(err, ErrSlotMissing) {
			return &fatalStream{fmt.Errorf("%w: it was dropped while pgcdc ran; pgcdc does not recreate it silently (changes made meanwhile would be lost): see docs/operations.md, \"Recovering from a lost slot\"", err)}
		}
		return err
	}
	if err := CheckSlot(slot, s.opts.Database); err != nil {
		return &fatalStream{err}
	}
	connect := s.connect
	if connect == nil {
		connect = func(ctx context.Context) (*pgconn.PgConn, error) { return ConnectReplication(ctx, s.opts.ConnString) }
	}
	conn, err := connect(cctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	start := max(slot.ConfirmedFlush, s.pos.Safe())
	args := []string{"proto_version '1'", fmt.Sprintf("publication_names '\"%s\"'", s.opts.Publication), "messages 'true'"}
	if s.opts.Protocol2 {
		args[0] = "proto_version '2'"
		args = append(args, "streaming 'true'")
	}
	if err := pglogrepl.StartReplication(cctx, conn, s.opts.Slot, start, pglogrepl.StartReplicationOptions{PluginArgs: args}); err != nil {
		if held := s.slotInUse(cctx, err); held != nil {
			return held
		}
		return fmt.Errorf("postgres: START_REPLICATION on slot %q at %s: %w", s.opts.Slot, start, err)
	}
	cancel()
	if s.opts.OnStreaming != nil {
		s.opts.OnStreaming(true)
		defer s.opts.OnStreaming(false)
	}
	s.opts.Log.Info().Str("slot", s.opts.Slot).Str("start_lsn", start.String()).
		Str("slot_confirmed_flush_lsn", slot.ConfirmedFlush.String()).Msg("streaming")
	// flushed is what the server holds, not start: a start past it (what Kafka acknowledged, which
	// BeforeConfirm may have held back in the last session) is confirmed through BeforeConfirm too.
	r := &replSession{s: s, conn: conn, net: conn.Conn(), received: start, flushed: slot.ConfirmedFlush, serverEnd: slot.ServerWALEnd}
	if err := r.deliver(ctx, out, Message{Kind: MessageSession, LSN: start}); err != nil {
		return r.end(err)
	}
	return r.end(r.run(ctx, out))
}

// SlotInUseError says another process streams from the slot.
type SlotInUseError struct {
	Slot   string
	Holder string // who holds it (pid, client address, application name, since), when known
	Err    error
}

func (e *SlotInUseError) Error() string {
	return fmt.Sprintf("postgres: replication slot %q is in use by %s: only one process can stream from a slot (a standby pgcdc waits here until the active one stops): %v", e.Slot, e.Holder, e.Err)
}
func (e *SlotInUseError) Unwrap() error { return e.Err }

// slotInUse turns START_REPLICATION's "slot is active for PID n" (55006) into a SlotInUseError that
// names the holder.
func (s *Stream) slotInUse(ctx context.Context, err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "55006" {
		return nil
	}
	holder := "another process"
	if s.sql != nil && !s.sql.IsClosed() {
		if h, herr := ReadSlotHolder(ctx, s.sql, s.opts.Slot); herr == nil {
			holder = h.String()
		}
	}
	return &SlotInUseError{Slot: s.opts.Slot, Holder: holder, Err: err}
}

// replSession is one replication connection's state, used by Run's goroutine only.
type replSession struct {
	s         *Stream
	conn      *pgconn.PgConn
	net       net.Conn
	received  pglogrepl.LSN // end of the newest WAL data received: the write position
	flushed   pglogrepl.LSN // the flush position of the last status update
	serverEnd pglogrepl.LSN
	lastSent  time.Time // when the last status update was sent
	wake      time.Time // when to look at the position next
	deadline  time.Time // the read deadline set on the socket
	// asks counts the server's requests for a reply in a row that could not confirm its WAL end,
	// each within serverAskGap of the one before, the last at lastAsk (see serverWaits).
	asks    int
	lastAsk time.Time
}

// serverWaitingAsks requests for a reply in a row, each within serverAskGap of the one before and
// none of which could confirm the server's WAL end, mean that the server waits for that position:
// a walsender of a server shutting down asks again as soon as it gets each reply, while a running
// one asks at most every half wal_sender_timeout. The position cannot be confirmed while Kafka has
// not acknowledged it, or while pgcdc is idle: its slot then stays behind the write recording its
// position (BeforeConfirm, docs/failover.md).
const (
	serverWaitingAsks = 50
	serverAskGap      = 250 * time.Millisecond
)

// errServerWaits ends a session whose server waits for a position pgcdc cannot confirm (see
// serverWaitingAsks): a shutdown waits for each walsender's client to confirm everything it was
// sent, and would otherwise wait for Kafka, or for good. Nothing is lost: the unconfirmed changes
// are read again from the slot after the reconnect.
var errServerWaits = errors.New("postgres: the server keeps asking for a position pgcdc cannot confirm (not yet acknowledged by Kafka, or the write recording pgcdc's own position; is the server shutting down?): ending the replication session so that it does not wait; the unconfirmed changes are read again after the reconnect")

// serverWaits counts a request for a reply the status update could not satisfy (flush below end)
// and reports whether the server is waiting for it.
func (r *replSession) serverWaits(now time.Time, end pglogrepl.LSN) bool {
	if r.flushed >= end {
		r.asks = 0
		return false
	}
	if now.Sub(r.lastAsk) > serverAskGap {
		r.asks = 0
	}
	r.asks, r.lastAsk = r.asks+1, now
	return r.asks >= serverWaitingAsks
}

// run reads and delivers messages until ctx ends (nil), the receiver asks to stop reading, or the
// connection fails.
func (r *replSession) run(ctx context.Context, out chan<- Message) error {
	// A stop interrupts a blocked read at once by moving the deadline to now.
	stopRead := context.AfterFunc(ctx, func() { _ = r.net.SetReadDeadline(time.Now()) })
	defer stopRead()
	for {
		if ctx.Err() != nil {
			return nil
		}
		if r.s.stopping() {
			return r.linger(ctx)
		}
		now := time.Now()
		if !now.Before(r.wake) {
			if err := r.statusIfDue(now); err != nil {
				return err
			}
		}
		if !r.deadline.Equal(r.wake) {
			if err := r.net.SetReadDeadline(r.wake); err != nil {
				return fmt.Errorf("postgres: replication connection: %w", err)
			}
			r.deadline = r.wake
		}
		raw, err := r.conn.ReceiveMessage(context.Background())
		if err != nil {
			if pgconn.Timeout(err) {
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("postgres: replication connection: %w", err)
		}
		switch m := raw.(type) {
		case *pgproto3.CopyData:
			if err := r.copyData(ctx, out, m.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return pgconn.ErrorResponseToPgError(m)
		case *pgproto3.CopyDone, *pgproto3.CommandComplete, *pgproto3.ReadyForQuery:
			return fmt.Errorf("postgres: the server ended the replication stream (%T): shutting down or restarting", raw)
		default:
			return fmt.Errorf("postgres: unexpected message %T on the replication connection", raw)
		}
	}
}

func (r *replSession) copyData(ctx context.Context, out chan<- Message, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		pk, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return &fatalStream{fmt.Errorf("postgres: bad keepalive: %w", err)}
		}
		r.serverEnd = max(r.serverEnd, pk.ServerWALEnd)
		if pk.ReplyRequested {
			now := time.Now()
			if err := r.sendStatus(now); err != nil {
				return err
			}
			if r.serverWaits(now, pk.ServerWALEnd) {
				return errServerWaits
			}
		}
		return r.deliver(ctx, out, Message{Kind: MessageKeepalive, LSN: pk.ServerWALEnd})
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return &fatalStream{fmt.Errorf("postgres: bad XLogData: %w", err)}
		}
		r.serverEnd = max(r.serverEnd, xld.ServerWALEnd)
		r.received = max(r.received, xld.WALStart+pglogrepl.LSN(len(xld.WALData)))
		// The connection reuses its buffer at the next read: the receiver gets a copy.
		return r.deliver(ctx, out, Message{Kind: MessageData, LSN: xld.WALStart, Data: append([]byte(nil), xld.WALData...)})
	}
	return nil
}

// deliver hands m to the receiver, sending status updates while it waits. It gives up on m (nil)
// when ctx ends or the receiver asked the stream to stop reading.
func (r *replSession) deliver(ctx context.Context, out chan<- Message, m Message) error {
	select {
	case out <- m:
		return nil
	default:
	}
	timer := time.NewTimer(time.Until(r.wake))
	defer timer.Stop()
	for {
		select {
		case out <- m:
			return nil
		case <-ctx.Done():
			return nil
		case <-r.s.stopRead:
			return nil
		case now := <-timer.C:
			if err := r.statusIfDue(now); err != nil {
				return err
			}
			timer.Reset(time.Until(r.wake))
		}
	}
}

// linger serves a stream that stopped reading: it confirms the position as it moves until ctx ends.
func (r *replSession) linger(ctx context.Context) error {
	for {
		changed := r.s.pos.Changed()
		if err := r.statusIfDue(time.Now()); err != nil {
			return err
		}
		timer := time.NewTimer(time.Until(r.wake))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-changed:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// statusIfDue sends a status update when the position moved and ConfirmDelay passed since the last
// one, or when StatusInterval passed; it sets when to look again.
func (r *replSession) statusIfDue(now time.Time) error {
	o := r.s.opts
	since := now.Sub(r.lastSent)
	if since >= o.StatusInterval || (r.s.pos.Published() > r.flushed && since >= o.ConfirmDelay) {
		return r.sendStatus(now)
	}
	r.wake = now.Add(min(o.ConfirmDelay, o.StatusInterval-since))
	return nil
}

// sendStatus confirms the position: flush = apply = what Kafka holds, write = what was received.
// All three are set explicitly (pglogrepl copies write into zero flush/apply fields).
func (r *replSession) sendStatus(now time.Time) error {
	flush := r.s.pos.Safe()
	if flush > r.flushed && r.s.opts.BeforeConfirm != nil {
		allowed, err := r.s.beforeConfirm(flush)
		if err != nil {
			// Nothing past the record may be confirmed. The session ends instead of lingering
			// unconfirmed: a PostgreSQL that shuts down (the usual cause: it refuses the write)
			// waits for its walsenders to see everything sent confirmed, or their client gone.
			return fmt.Errorf("postgres: record the position %s before confirming it: %w", flush, err)
		}
		flush = max(min(flush, allowed), r.flushed)
	}
	write := max(r.received, flush)
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), r.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: write, WALFlushPosition: flush, WALApplyPosition: flush, ClientTime: now,
	})
	if err != nil {
		return fmt.Errorf("postgres: send status update: %w", err)
	}
	r.flushed, r.lastSent = flush, now
	r.wake = now.Add(r.s.opts.ConfirmDelay)
	r.s.confirmed.Store(uint64(flush))
	r.s.serverEnd.Store(uint64(max(r.serverEnd, flush)))
	if r.s.opts.OnStatus != nil {
		r.s.opts.OnStatus(flush, r.serverEnd)
	}
	return nil
}

// beforeConfirm runs BeforeConfirm on the stream's SQL connection, (re)connecting it as needed.
func (s *Stream) beforeConfirm(flush pglogrepl.LSN) (pglogrepl.LSN, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s.connectSQL != nil {
		conn, err := s.connectSQL(ctx)
		if err != nil {
			return 0, err
		}
		return s.opts.BeforeConfirm(ctx, conn, flush)
	}
	if s.sql == nil || s.sql.IsClosed() {
		conn, err := ConnectSQL(ctx, s.opts.ConnString)
		if err != nil {
			return 0, err
		}
		s.sql = conn
	}
	return s.opts.BeforeConfirm(ctx, s.sql, flush)
}

// end finishes a session. After a stop (err nil) it sends the last status update and ends the
// COPY, so that the walsender has processed the position before the connection closes; the next
// process then reads the slot at that position.
func (r *replSession) end(err error) error {
	if err != nil {
		return err
	}
	if err := r.sendStatus(time.Now()); err != nil {
		return err
	}
	_ = r.net.SetDeadline(time.Now().Add(5 * time.Second))
	r.conn.Frontend().Send(&pgproto3.CopyDone{})
	if err := r.conn.Frontend().Flush(); err != nil {
		return nil // closing anyway; the status update was written before
	}
	for {
		msg, err := r.conn.ReceiveMessage(context.Background())
		if err != nil {
			return nil
		}
		switch msg.(type) {
		case *pgproto3.ReadyForQuery, *pgproto3.ErrorResponse:
			return nil
		}
	}
}

// ExplainReplicationError adds what happened and how to recover to a permanent error of the
// replication connection, when PostgreSQL's own message does not say it.
func ExplainReplicationError(err error, publication string) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch {
	case pgErr.Code == "42704" && containsAny(pgErr.Message, "publication"):
		return fmt.Errorf("%w: the publication pgcdc streams from is missing at the WAL position being decoded (dropped while changes were made). "+PublicationRecovery,
			err, pgx.Identifier{publication}.Sanitize())
	case pgErr.Code == "42704" && containsAny(pgErr.Message, "replication slot"):
		return fmt.Errorf("%w: the replication slot was dropped while pgcdc ran; pgcdc does not recreate it silently (changes made meanwhile would be lost): see docs/operations.md, \"Recovering from a lost slot\"", err)
	case pgErr.Code == "42501" || pgErr.Code == "28000":
		return fmt.Errorf("%w: the role pgcdc connects as lost a privilege it needs (REPLICATION to stream, LOGIN and CONNECT to connect). "+
			"Recover: grant it again (ALTER ROLE ... REPLICATION; GRANT CONNECT ON DATABASE ...) and start pgcdc: it resumes from the slot's confirmed position, nothing is lost (docs/faults.md)", err)
	case pgErr.Code == "55000" && containsAny(pgErr.Detail+pgErr.Message, "invalidated"):
		return fmt.Errorf("%w: the replication slot was invalidated (PostgreSQL removed WAL it still needed, max_slot_wal_keep_size); the changes in between are lost to it. "+
			"Recover: drop the slot, start pgcdc to create a new one and re-snapshot the tables: see docs/operations.md, \"Recovering from a lost slot\"", err)
	}
	return err
}

// PublicationRecovery is the recovery procedure for a publication dropped while pgcdc ran; %s is
// the publication's quoted name.
const PublicationRecovery = "Recover: recreate the publication (CREATE PUBLICATION %s FOR TABLE ..., " +
	"or let pgcdc create it at start with postgres.create_publication: true) and start pgcdc again. If it then stops with " +
	"\"publication ... does not exist\" at the same position, changes were made while the publication was missing and this slot can " +
	"never get past them: drop the slot (SELECT pg_drop_replication_slot('<slot>')), start pgcdc to create a new one, and re-snapshot " +
	"the tables (docs/faults.md, \"Publication dropped\")"
