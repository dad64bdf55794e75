package connector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgcdc/pgcdc/pkg/ack"
	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
)

// session is one replication connection's life. All its methods run on the stream goroutine.
type session struct {
	c    *Connector
	conn *pgconn.PgConn
	h    *changes

	statusEvery  time.Duration
	nextStatus   time.Time
	received     pglogrepl.LSN // end of the newest WAL data received
	serverEnd    pglogrepl.LSN // server's WAL end, for the lag
	keepaliveEnd pglogrepl.LSN // sentPtr of the newest keepalive: confirmable when nothing is in flight
	lastFlush    pglogrepl.LSN

	stopping     bool
	stopDeadline time.Time

	progressAt   time.Time
	progressAcks int64
}

// stream runs one replication session: connect, START_REPLICATION from the resume position, then
// receive and handle messages until ctx ends (errStopped) or the connection breaks.
func (c *Connector) stream(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, c.cfg.Postgres.ConnectTimeout)
	defer cancel()
	if c.sql.IsClosed() {
		sql, err := pgsource.ConnectSQL(cctx, c.connStr)
		if err != nil {
			return err
		}
		c.sql = sql
		c.rels.SetCatalog(decode.PGCatalog{Conn: sql})
	}
	slot, err := pgsource.ReadSlot(cctx, c.sql, c.cfg.Postgres.Slot)
	if err != nil && c.sql.IsClosed() {
		// The catalog connection broke with the server (a restart, a terminated backend) and only
		// this query noticed: reconnect it now rather than after a backoff.
		sql, cerr := pgsource.ConnectSQL(cctx, c.connStr)
		if cerr != nil {
			return cerr
		}
		c.sql = sql
		c.rels.SetCatalog(decode.PGCatalog{Conn: sql})
		slot, err = pgsource.ReadSlot(cctx, c.sql, c.cfg.Postgres.Slot)
	}
	if err != nil {
		if errors.Is(err, pgsource.ErrSlotMissing) {
			return fatal(fmt.Errorf("%w: it was dropped while pgcdc ran; pgcdc does not recreate it silently (changes made meanwhile would be lost): see docs/operations.md, \"Recovering from a lost slot\"", err))
		}
		return err
	}
	if err := pgsource.CheckSlot(slot, c.info.Database); err != nil {
		return fatal(err)
	}
	conn, err := pgsource.ConnectReplication(cctx, c.connStr)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())

	// A new session starts clean: transactions cut off by the break are sent again whole.
	c.tracker.DiscardOpen()
	c.rels.Reset()
	if c.spool != nil {
		if err := c.spool.Reset(); err != nil {
			return fatal(fmt.Errorf("postgres.spool_dir: %w", err))
		}
	}
	start := c.resumeLSN(slot)
	args := []string{"proto_version '1'", fmt.Sprintf("publication_names '%s'", quotePublication(c.cfg.Postgres.Publication)), "messages 'true'"}
	if c.cfg.Postgres.Streaming {
		args[0] = "proto_version '2'"
		args = append(args, "streaming 'true'")
	}
	if err := pglogrepl.StartReplication(cctx, conn, c.cfg.Postgres.Slot, start, pglogrepl.StartReplicationOptions{PluginArgs: args}); err != nil {
		return fmt.Errorf("postgres: START_REPLICATION on slot %q at %s: %w", c.cfg.Postgres.Slot, start, err)
	}
	cancel()
	c.metrics.Streaming(true)
	defer c.metrics.Streaming(false)
	c.log.Info().Str("slot", c.cfg.Postgres.Slot).Str("start_lsn", start.String()).
		Str("slot_confirmed_flush_lsn", slot.ConfirmedFlush.String()).Msg("streaming")

	s := &session{c: c, conn: conn, statusEvery: c.statusInterval(), received: start, lastFlush: start, progressAt: time.Now()}
	s.h = newChanges(c, s.keepAlive)
	s.h.lastCommit = c.sessionLastCommit(start)
	return s.run(ctx)
}

// quotePublication quotes a publication name for the publication_names option (an identifier
// list inside a string literal).
func quotePublication(name string) string { return `"` + name + `"` }

// statusInterval is the configured interval, capped at a third of wal_sender_timeout so that the
// walsender never times out on us, even while we wait for Kafka.
func (c *Connector) statusInterval() time.Duration {
	d := c.cfg.Postgres.StatusInterval
	if t := c.info.WALSenderTimeout; t > 0 && t/3 < d {
		d = t / 3
	}
	return d
}

func (s *session) run(ctx context.Context) error {
	// Reads are bounded by a deadline on the socket, set once per status interval, rather than by a
	// context per message (a context and its watcher per message cost ~10% of the CPU). A stop
	// interrupts the read at once by moving the deadline to now.
	netConn := s.conn.Conn()
	var readDeadline time.Time
	stopRead := context.AfterFunc(ctx, func() { _ = netConn.SetReadDeadline(time.Now()) })
	defer stopRead()
	for {
		if err := s.c.sink.FatalErr(); err != nil {
			return err
		}
		if !s.stopping && ctx.Err() != nil {
			s.stopping = true
			s.stopDeadline = time.Now().Add(s.c.cfg.Kafka.ShutdownTimeout)
			readDeadline = time.Time{} // the stop moved it: set it again below
			if s.h.busy() {
				s.c.log.Info().Msg("stopping: finishing the current transaction first")
			}
		}
		if s.stopping && (!s.h.busy() || time.Now().After(s.stopDeadline)) {
			return s.shutdown()
		}
		now := time.Now()
		if !now.Before(s.nextStatus) {
			if err := s.sendStatus(); err != nil {
				return err
			}
		}
		s.progress(now)
		deadline := s.nextStatus
		if s.stopping && s.stopDeadline.Before(deadline) {
			deadline = s.stopDeadline
		}
		if !deadline.Equal(readDeadline) {
			if err := netConn.SetReadDeadline(deadline); err != nil {
				return fmt.Errorf("postgres: replication connection: %w", err)
			}
			readDeadline = deadline
		}
		raw, err := s.conn.ReceiveMessage(context.Background())
		if err != nil {
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("postgres: replication connection: %w", err)
		}
		switch m := raw.(type) {
		case *pgproto3.CopyData:
			if err := s.handleCopyData(ctx, m.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return pgconn.ErrorResponseToPgError(m)
		default:
			return fmt.Errorf("postgres: unexpected message %T on the replication connection", raw)
		}
	}
}

func (s *session) handleCopyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		pk, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fatal(fmt.Errorf("postgres: bad keepalive: %w", err))
		}
		if pk.ServerWALEnd > s.serverEnd {
			s.serverEnd = pk.ServerWALEnd
		}
		if pk.ServerWALEnd > s.keepaliveEnd {
			s.keepaliveEnd = pk.ServerWALEnd
		}
		if pk.ReplyRequested {
			return s.sendStatus()
		}
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fatal(fmt.Errorf("postgres: bad XLogData: %w", err))
		}
		if xld.ServerWALEnd > s.serverEnd {
			s.serverEnd = xld.ServerWALEnd
		}
		if end := xld.WALStart + pglogrepl.LSN(len(xld.WALData)); end > s.received {
			s.received = end
		}
		return s.h.handle(ctx, xld.WALStart, xld.WALData)
	}
	return nil
}

// sendStatus confirms the safe LSN: write = received, flush = apply = what Kafka holds. When nothing
// is in flight, the newest keepalive's WAL end is confirmable too (invariant 2).
func (s *session) sendStatus() error {
	if !s.h.busy() {
		s.c.tracker.ConfirmIdle(ack.LSN(s.keepaliveEnd))
	}
	flush := pglogrepl.LSN(s.c.tracker.Safe())
	write := s.received
	if flush > write {
		write = flush
	}
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), s.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: write, WALFlushPosition: flush, WALApplyPosition: flush, ClientTime: time.Now(),
	})
	if err != nil {
		return fmt.Errorf("postgres: send status update: %w", err)
	}
	s.lastFlush = flush
	s.c.metrics.Confirmed(uint64(flush), uint64(s.serverEnd))
	s.nextStatus = time.Now().Add(s.statusEvery)
	return nil
}

// keepAlive is called while the handler waits for room in the sink: it sends a status update when
// one is due (the walsender resets its timeout on any message from us) and gives up when a stop
// outlives its deadline or the sink failed.
func (s *session) keepAlive() error {
	if err := s.c.sink.FatalErr(); err != nil {
		return err
	}
	if s.stopping && time.Now().After(s.stopDeadline) {
		return errStopped
	}
	if !time.Now().Before(s.nextStatus) {
		return s.sendStatus()
	}
	return nil
}

// shutdown waits for Kafka to acknowledge what is in flight (until the stop deadline, sending
// status updates meanwhile), confirms it, and ends the session.
func (s *session) shutdown() error {
	for {
		wait := time.Until(s.stopDeadline)
		if wait <= 0 {
			s.c.log.Warn().Int64("bytes_in_flight", s.c.sink.InFlight()).
				Msg("shutdown timeout: stopping with unacknowledged events (they are sent again on the next start)")
			break
		}
		if wait > s.statusEvery {
			wait = s.statusEvery
		}
		dctx, cancel := context.WithTimeout(context.Background(), wait)
		err := s.c.sink.Drain(dctx)
		cancel()
		if err == nil {
			break
		}
		if ferr := s.c.sink.FatalErr(); ferr != nil {
			return ferr
		}
		if err := s.sendStatus(); err != nil {
			return err
		}
	}
	if err := s.sendStatus(); err != nil {
		return err
	}
	s.c.log.Info().Str("confirmed_lsn", s.lastFlush.String()).Msg("stopped cleanly")
	return errStopped
}

// progress logs a line at the configured interval.
func (s *session) progress(now time.Time) {
	every := s.c.cfg.Log.ProgressInterval
	if every <= 0 || now.Sub(s.progressAt) < every {
		return
	}
	st := s.c.tracker.Stats()
	rate := float64(st.Acked-s.progressAcks) / now.Sub(s.progressAt).Seconds()
	lag := int64(0)
	if s.serverEnd > s.lastFlush {
		lag = int64(s.serverEnd - s.lastFlush)
	}
	s.c.log.Info().Float64("events_per_sec", rate).Int64("events_acked", st.Acked).
		Str("confirmed_lsn", s.lastFlush.String()).Int64("lag_bytes", lag).
		Int64("bytes_in_flight", s.c.sink.InFlight()).Msg("progress")
	s.progressAt, s.progressAcks = now, st.Acked
}
