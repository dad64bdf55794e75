package incremental

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgcdc/pgcdc/pkg/snapshot"
)

// TableName is the progress table's name (in snapshot.progress_schema).
const TableName = "pgcdc_incremental_snapshot"

// Entry states.
const (
	stateQueued  = "queued"  // requested, not started
	stateRunning = "running" // max_key read: chunks in progress
	slotActive   = "active"  // the slot's own row: chunks are read
	slotPaused   = "paused"  // the slot's own row: paused by a pause-snapshot signal
)

// DDL returns the statements that create the progress table in schema (for an administrator when
// pgcdc's role may not create tables).
func DDL(schema string) string {
	t := pgx.Identifier{schema, TableName}.Sanitize()
	return snapshot.OwnedDDL(t, `CREATE TABLE `+t+` (
  role_name     text   NOT NULL DEFAULT current_user, -- the role that owns the row (row-level security)
  slot_name     text   NOT NULL,
  seq           bigint NOT NULL,               -- 0: the slot's own row; then the queue, in request order
  table_name    text   NOT NULL DEFAULT '',    -- schema.table ('' on the slot's row)
  filter        text   NOT NULL DEFAULT '',    -- additional condition (SQL)
  surrogate_key text   NOT NULL DEFAULT '',    -- column chunking the table instead of its key
  signal_id     text   NOT NULL DEFAULT '',    -- the signal that asked for it
  state         text   NOT NULL,               -- slot row: active | paused; table: queued | running
  max_key       text[],                        -- running: the last key to read (read when the table started)
  last_key      text[],                        -- running: the last key of the last chunk Kafka acknowledged
  rows_done     bigint NOT NULL DEFAULT 0,     -- rows published by acknowledged chunks
  rows_estimate bigint NOT NULL DEFAULT 0,
  chunks_done   bigint NOT NULL DEFAULT 0,
  signal_offset bigint,                        -- slot row: the next offset of the Kafka signal topic to read
  source_lsn    bigint,                        -- slot row: commit LSN of the last signal table transaction acted on
  known_tables  text[],                        -- slot row: tables whose rows the topics hold (snapshotted or backfilled)
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (slot_name, seq)
)`)
}

// Entry is one table of the queue.
type Entry struct {
	Seq          int64
	Table        string // schema.table
	Filter       string
	SurrogateKey string
	SignalID     string
	State        string
	MaxKey       []string
	LastKey      []string
	Rows         int64
	Estimate     int64
	Chunks       int64
}

// State is what the store holds for one slot.
type State struct {
	Paused       bool
	Queue        []*Entry // in seq order
	Known        []string // nil: never recorded
	SignalOffset int64    // -1: none recorded
	SourceLSN    uint64   // 0: none recorded
}

// store keeps the incremental snapshot's progress in <schema>.pgcdc_incremental_snapshot, one
// table for every slot and role (snapshot.OwnedTable: row-level security shows each role its own
// rows). Its methods are used under the Snapshotter's lock (one connection).
type store struct {
	*snapshot.OwnedTable
	slot string
}

func openStore(ctx context.Context, conn *pgx.Conn, schema, slot string) (*store, error) {
	o, err := snapshot.OpenOwnedTable(ctx, conn, schema, TableName, DDL(schema))
	if err != nil {
		return nil, fmt.Errorf("incremental snapshot: %w", err)
	}
	return &store{OwnedTable: o, slot: slot}, nil
}

func (s *store) explain(err error, what string) error {
	return fmt.Errorf("incremental snapshot: %w", s.Explain(s.ExplainConflict(err, s.slot, "pgcdc then forgets its incremental snapshots"), what))
}

// load reads the slot's state, creating the slot's own row when it has none.
func (s *store) load(ctx context.Context) (State, error) {
	st := State{SignalOffset: -1}
	var state string
	var offset, source *int64
	err := s.Conn.QueryRow(ctx, `SELECT state, signal_offset, source_lsn, known_tables FROM `+s.Table+` WHERE slot_name = $1 AND seq = 0`, s.slot).Scan(&state, &offset, &source, &st.Known)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := s.Conn.Exec(ctx, `INSERT INTO `+s.Table+` (slot_name, seq, state) VALUES ($1, 0, $2)`, s.slot, slotActive); err != nil {
			return st, s.explain(err, "record slot "+s.slot+" in")
		}
		return st, nil
	}
	if err != nil {
		return st, s.explain(err, "read the incremental snapshots of slot "+s.slot+" from")
	}
	st.Paused = state == slotPaused
	if offset != nil {
		st.SignalOffset = *offset
	}
	if source != nil {
		st.SourceLSN = uint64(*source)
	}
	rows, err := s.Conn.Query(ctx, `SELECT seq, table_name, filter, surrogate_key, signal_id, state, max_key, last_key, rows_done, rows_estimate, chunks_done
		FROM `+s.Table+` WHERE slot_name = $1 AND seq > 0 ORDER BY seq`, s.slot)
	if err != nil {
		return st, s.explain(err, "read the incremental snapshots of slot "+s.slot+" from")
	}
	for rows.Next() {
		e := &Entry{}
		if err := rows.Scan(&e.Seq, &e.Table, &e.Filter, &e.SurrogateKey, &e.SignalID, &e.State, &e.MaxKey, &e.LastKey, &e.Rows, &e.Estimate, &e.Chunks); err != nil {
			rows.Close()
			return st, s.explain(err, "read the incremental snapshots of slot "+s.slot+" from")
		}
		st.Queue = append(st.Queue, e)
	}
	if err := rows.Err(); err != nil {
		return st, s.explain(err, "read the incremental snapshots of slot "+s.slot+" from")
	}
	return st, nil
}

// enqueue appends entries (their Seq is set) and, when offset >= 0, records the Kafka signal
// offset after them, in one transaction; known tables are extended with theirs.
func (s *store) enqueue(ctx context.Context, entries []*Entry, known []string, offset int64) error {
	err := pgx.BeginFunc(ctx, s.Conn, func(tx pgx.Tx) error {
		var next int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(seq), 0) + 1 FROM `+s.Table+` WHERE slot_name = $1`, s.slot).Scan(&next); err != nil {
			return err
		}
		for _, e := range entries {
			e.Seq, e.State = next, stateQueued
			next++
			if _, err := tx.Exec(ctx, `INSERT INTO `+s.Table+` (slot_name, seq, table_name, filter, surrogate_key, signal_id, state) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				s.slot, e.Seq, e.Table, e.Filter, e.SurrogateKey, e.SignalID, e.State); err != nil {
				return err
			}
		}
		return s.slotUpdate(ctx, tx, offset, `known_tables = (SELECT array_agg(DISTINCT t ORDER BY t) FROM unnest(coalesce(known_tables, '{}') || $3::text[]) t)`, known)
	})
	if err != nil {
		return s.explain(err, "record the incremental snapshot request of slot "+s.slot+" in")
	}
	return nil
}

// slotUpdate updates the slot's row: the signal offset when offset >= 0, and assignment (whose
// parameters start at $3: args) when not "".
func (s *store) slotUpdate(ctx context.Context, tx pgx.Tx, offset int64, assignment string, args ...any) error {
	set := `signal_offset = CASE WHEN $2::int8 >= 0 THEN $2::int8 ELSE signal_offset END, updated_at = now()`
	if assignment != "" {
		set += ", " + assignment
	}
	tag, err := tx.Exec(ctx, `UPDATE `+s.Table+` SET `+set+` WHERE slot_name = $1 AND seq = 0`, append([]any{s.slot, offset}, args...)...)
	if err == nil && tag.RowsAffected() != 1 {
		err = s.MissingRow(s.slot, "the slot's own row")
	}
	return err
}

// setPaused records the pause state (and the signal offset when offset >= 0).
func (s *store) setPaused(ctx context.Context, paused bool, offset int64) error {
	state := slotActive
	if paused {
		state = slotPaused
	}
	err := pgx.BeginFunc(ctx, s.Conn, func(tx pgx.Tx) error { return s.slotUpdate(ctx, tx, offset, `state = $3`, state) })
	if err != nil {
		return s.explain(err, "record the pause state of slot "+s.slot+" in")
	}
	return nil
}

// setOffset records the next Kafka signal offset.
func (s *store) setOffset(ctx context.Context, offset int64) error {
	err := pgx.BeginFunc(ctx, s.Conn, func(tx pgx.Tx) error { return s.slotUpdate(ctx, tx, offset, "") })
	if err != nil {
		return s.explain(err, "record the signal offset of slot "+s.slot+" in")
	}
	return nil
}

// setSourceLSN records the commit LSN of the last signal table transaction acted on.
func (s *store) setSourceLSN(ctx context.Context, lsn uint64) error {
	err := pgx.BeginFunc(ctx, s.Conn, func(tx pgx.Tx) error { return s.slotUpdate(ctx, tx, -1, `source_lsn = $3::int8`, int64(lsn)) })
	if err != nil {
		return s.explain(err, "record the signals acted on of slot "+s.slot+" in")
	}
	return nil
}

// setKnown records the tables whose rows the topics hold.
func (s *store) setKnown(ctx context.Context, tables []string) error {
	if tables == nil {
		tables = []string{}
	}
	err := pgx.BeginFunc(ctx, s.Conn, func(tx pgx.Tx) error { return s.slotUpdate(ctx, tx, -1, `known_tables = $3::text[]`, tables) })
	if err != nil {
		return s.explain(err, "record the captured tables of slot "+s.slot+" in")
	}
	return nil
}

// ForgetKnown takes tables off the tables whose rows slot's topics hold (known_tables), on conn,
// in the progress table of schema (nothing when it does not exist yet). pgcdc calls it before it
// adds tables to the publication, so that a crash between the addition and the request of their
// snapshot (Snapshotter.Request, which records them again) leaves them unknown, and the next
// start snapshots them (a table dropped and created again under a known name).
func ForgetKnown(ctx context.Context, conn *pgx.Conn, schema, slot string, tables []string) error {
	if len(tables) == 0 {
		return nil
	}
	t := pgx.Identifier{schema, TableName}.Sanitize()
	_, err := conn.Exec(ctx, `UPDATE `+t+` SET known_tables = ARRAY(SELECT k FROM unnest(known_tables) k WHERE k <> ALL ($2::text[]) ORDER BY k), updated_at = now()
		WHERE slot_name = $1 AND seq = 0 AND known_tables && $2::text[]`, slot, tables)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table: nothing recorded yet
		return nil
	}
	if err != nil {
		return fmt.Errorf("incremental snapshot: forget the snapshotted tables %v of slot %s in %s before adding them to the publication: %w", tables, slot, t, err)
	}
	return nil
}

// remove deletes entries (stopped, or finished) and, when offset >= 0, records the signal offset.
func (s *store) remove(ctx context.Context, seqs []int64, offset int64) error {
	err := pgx.BeginFunc(ctx, s.Conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM `+s.Table+` WHERE slot_name = $1 AND seq = ANY($2::int8[])`, s.slot, seqs); err != nil {
			return err
		}
		if offset < 0 {
			return nil
		}
		return s.slotUpdate(ctx, tx, offset, "")
	})
	if err != nil {
		return s.explain(err, "remove finished or stopped tables of slot "+s.slot+" from")
	}
	return nil
}

// start records that entry e's table started: its last key and estimate.
func (s *store) start(ctx context.Context, e *Entry) error {
	_, err := s.Conn.Exec(ctx, `UPDATE `+s.Table+` SET state = $3, max_key = $4, last_key = NULL, rows_done = 0, chunks_done = 0, rows_estimate = $5, updated_at = now()
		WHERE slot_name = $1 AND seq = $2`, s.slot, e.Seq, stateRunning, e.MaxKey, e.Estimate)
	if err != nil {
		return s.explain(err, "record the start of "+e.Table+" in")
	}
	return nil
}

// chunkDone records an acknowledged chunk of entry seq: the last key it read and its rows. An
// entry removed meanwhile (stopped) is not an error.
func (s *store) chunkDone(ctx context.Context, seq int64, last []string, rows int64) error {
	_, err := s.Conn.Exec(ctx, `UPDATE `+s.Table+` SET last_key = $3, rows_done = rows_done + $4, chunks_done = chunks_done + 1, updated_at = now()
		WHERE slot_name = $1 AND seq = $2`, s.slot, seq, last, rows)
	if err != nil {
		return s.explain(err, "record a chunk done in")
	}
	return nil
}
