package snapshot

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// Session is a set of connections that all see one snapshot: a coordinator (planning, the
// snapshot's LSN and transaction id) and the workers that read the chunks.
type Session struct {
	coord   *pgx.Conn
	workers []*pgx.Conn

	// Exported is true when the snapshot is the one the slot exported (consistent with its start).
	Exported bool
	// LSN is source.lsn of the snapshot's records: the slot's consistent point for an exported
	// snapshot, pg_current_wal_lsn() when the snapshot was taken otherwise (as Debezium does).
	LSN pglogrepl.LSN
	// TxID is source.txId: the coordinator transaction's id (txid_current(), as Debezium does).
	TxID uint32
	// Time is source.ts_ms of every record: when the snapshot was taken.
	Time time.Time
}

// Open connects the coordinator and n workers (connect opens one connection with pgcdc's
// session settings) and puts all of them in one REPEATABLE READ snapshot: exported when not ""
// (the caller closes the exporting replication connection once Open returned), else a fresh one
// the coordinator exports. consistentLSN is the slot's consistent point, used with exported.
func Open(ctx context.Context, connect func(context.Context) (*pgx.Conn, error), exported string, n int, consistentLSN pglogrepl.LSN) (_ *Session, err error) {
	s := &Session{Exported: exported != "", Time: time.Now()}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.coord, err = connect(ctx); err != nil {
		return nil, err
	}
	if _, err := s.coord.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ"); err != nil {
		return nil, fmt.Errorf("snapshot: begin: %w", err)
	}
	name := exported
	if exported != "" {
		if _, err := s.coord.Exec(ctx, "SET TRANSACTION SNAPSHOT "+QuoteLiteral(exported)); err != nil {
			return nil, fmt.Errorf("snapshot: import the slot's exported snapshot %s: %w", exported, err)
		}
		s.LSN = consistentLSN
	} else {
		var lsn string
		if err := s.coord.QueryRow(ctx, "SELECT pg_export_snapshot(), pg_current_wal_lsn()::text").Scan(&name, &lsn); err != nil {
			return nil, fmt.Errorf("snapshot: export a snapshot: %w", err)
		}
		if s.LSN, err = pglogrepl.ParseLSN(lsn); err != nil {
			return nil, fmt.Errorf("snapshot: pg_current_wal_lsn() %q: %w", lsn, err)
		}
	}
	var xid int64
	if err := s.coord.QueryRow(ctx, "SELECT txid_current()").Scan(&xid); err != nil {
		return nil, fmt.Errorf("snapshot: transaction id: %w", err)
	}
	s.TxID = uint32(xid)
	for i := 0; i < n; i++ {
		w, err := connect(ctx)
		if err != nil {
			return nil, err
		}
		s.workers = append(s.workers, w)
		if _, err := w.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
			return nil, fmt.Errorf("snapshot: begin: %w", err)
		}
		if _, err := w.Exec(ctx, "SET TRANSACTION SNAPSHOT "+QuoteLiteral(name)); err != nil {
			return nil, fmt.Errorf("snapshot: import snapshot %s: %w", name, err)
		}
	}
	return s, nil
}

// Coordinator is the connection in the snapshot for planning (read only by convention).
func (s *Session) Coordinator() *pgx.Conn { return s.coord }

// Close ends every transaction and connection.
func (s *Session) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, c := range append([]*pgx.Conn{s.coord}, s.workers...) {
		if c != nil {
			c.Close(ctx)
		}
	}
	s.coord, s.workers = nil, nil
}

// QuoteLiteral returns s as an SQL string literal (” doubled), for statements that take no
// parameters (SET TRANSACTION SNAPSHOT) and for SQL shown to users.
func QuoteLiteral(s string) string {
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}
