package snapshot

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// TableName is the progress table's name (in the configured schema).
const TableName = "pgcdc_snapshot_progress"

// Snapshot states (the snapshot's own row).
const (
	StateNone    = ""        // no snapshot recorded for the slot
	StatePending = "pending" // decided, slot maybe not yet created, no plan yet
	StateRunning = "running" // plan recorded; chunks in progress
	StateDone    = "done"    // every chunk acknowledged by Kafka
)

// Store keeps snapshot progress in the source database, in <schema>.pgcdc_snapshot_progress:
// per slot one row with chunk = -1 for the snapshot itself and one row per chunk.
type Store struct {
	conn  *pgx.Conn
	table string // quoted schema.table
}

// DDL returns the statement that creates the progress table in schema (for an administrator when
// pgcdc's role may not create tables).
func DDL(schema string) string {
	return `CREATE TABLE IF NOT EXISTS ` + pgx.Identifier{schema, TableName}.Sanitize() + ` (
  slot_name         text    NOT NULL,
  table_name        text    NOT NULL,               -- schema.table; '' on the snapshot's own row
  chunk             int     NOT NULL,               -- chunk number in its table; -1 on the snapshot's own row
  ordinal           int     NOT NULL DEFAULT 0,     -- chunk number in the plan
  table_order       int     NOT NULL DEFAULT 0,
  kind              text    NOT NULL DEFAULT '',    -- key | ctid | all
  lower_bound       text[],                         -- key: exclusive; ctid: first block
  upper_bound       text[],                         -- key: inclusive; ctid: block after the last
  last_in_table     boolean NOT NULL DEFAULT false,
  first_in_snapshot boolean NOT NULL DEFAULT false,
  last_in_snapshot  boolean NOT NULL DEFAULT false,
  rows_estimate     bigint  NOT NULL DEFAULT 0,
  state             text    NOT NULL,               -- snapshot: pending | running | done; chunk: todo | done
  rows_done         bigint,
  start_lsn         pg_lsn,                         -- snapshot: the slot's confirmed position when the plan was made
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (slot_name, table_name, chunk)
)`
}

// OpenStore returns the store on conn, creating the table when it does not exist.
func OpenStore(ctx context.Context, conn *pgx.Conn, schema string) (*Store, error) {
	s := &Store{conn: conn, table: pgx.Identifier{schema, TableName}.Sanitize()}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, s.table).Scan(&exists); err != nil {
		return nil, fmt.Errorf("snapshot: look for %s: %w", s.table, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, DDL(schema)); err != nil {
			return nil, fmt.Errorf("snapshot: create the progress table %s: %w (or have an administrator create it:\n%s;\nand grant pgcdc SELECT, INSERT, UPDATE, DELETE on it)", s.table, err, DDL(schema))
		}
	}
	return s, nil
}

// State is what the store holds for one slot.
type State struct {
	Status   string
	StartLSN pglogrepl.LSN // the slot's confirmed position when the plan was recorded
	Chunks   []*Chunk      // the plan, in plan order (empty unless running or done)
}

// Load reads slot's snapshot state.
func (s *Store) Load(ctx context.Context, slot string) (State, error) {
	var st State
	var start string
	err := s.conn.QueryRow(ctx, `SELECT state, coalesce(start_lsn::text, '0/0') FROM `+s.table+` WHERE slot_name = $1 AND chunk = -1`, slot).Scan(&st.Status, &start)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("snapshot: read progress of slot %s: %w", slot, err)
	}
	if st.StartLSN, err = pglogrepl.ParseLSN(start); err != nil {
		return st, fmt.Errorf("snapshot: progress of slot %s: start_lsn %q: %w", slot, start, err)
	}
	rows, err := s.conn.Query(ctx, `SELECT table_name, chunk, ordinal, table_order, kind, lower_bound, upper_bound,
			last_in_table, first_in_snapshot, last_in_snapshot, rows_estimate, state = 'done', coalesce(rows_done, 0)
		FROM `+s.table+` WHERE slot_name = $1 AND chunk >= 0 ORDER BY ordinal`, slot)
	if err != nil {
		return st, fmt.Errorf("snapshot: read progress of slot %s: %w", slot, err)
	}
	for rows.Next() {
		c := &Chunk{}
		var kind string
		if err := rows.Scan(&c.Table, &c.Seq, &c.Ordinal, &c.TableOrder, &kind, &c.Lower, &c.Upper,
			&c.LastInTable, &c.FirstInSnapshot, &c.LastInSnapshot, &c.Estimate, &c.Done, &c.Rows); err != nil {
			rows.Close()
			return st, fmt.Errorf("snapshot: read progress of slot %s: %w", slot, err)
		}
		c.Kind = Kind(kind)
		st.Chunks = append(st.Chunks, c)
	}
	return st, rows.Err()
}

// Begin records that slot needs a snapshot, forgetting any earlier one. It is written before the
// slot is created, so that a crash in between is seen as a snapshot still to do.
func (s *Store) Begin(ctx context.Context, slot string) error {
	return pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM `+s.table+` WHERE slot_name = $1`, slot); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO `+s.table+` (slot_name, table_name, chunk, state) VALUES ($1, '', -1, 'pending')`, slot)
		return err
	})
}

// SavePlan records the plan of slot's snapshot and marks it running. startLSN is the slot's
// confirmed position: a resume is valid only while the slot has not moved (nor been recreated).
func (s *Store) SavePlan(ctx context.Context, slot string, chunks []*Chunk, startLSN pglogrepl.LSN) error {
	err := pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM `+s.table+` WHERE slot_name = $1 AND chunk >= 0`, slot); err != nil {
			return err
		}
		rows := make([][]any, len(chunks))
		for i, c := range chunks {
			rows[i] = []any{slot, c.Table, c.Seq, c.Ordinal, c.TableOrder, string(c.Kind), c.Lower, c.Upper,
				c.LastInTable, c.FirstInSnapshot, c.LastInSnapshot, c.Estimate, "todo"}
		}
		for _, r := range rows {
			if _, err := tx.Exec(ctx, `INSERT INTO `+s.table+` (slot_name, table_name, chunk, ordinal, table_order, kind, lower_bound, upper_bound,
					last_in_table, first_in_snapshot, last_in_snapshot, rows_estimate, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`, r...); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `UPDATE `+s.table+` SET state = 'running', start_lsn = $2::text::pg_lsn, updated_at = now() WHERE slot_name = $1 AND chunk = -1`,
			slot, startLSN.String())
		return err
	})
	if err != nil {
		return fmt.Errorf("snapshot: record the plan of slot %s: %w", slot, err)
	}
	return nil
}

// MarkDone records chunk c of slot's snapshot as acknowledged, with the rows it read.
func (s *Store) MarkDone(ctx context.Context, slot string, c *Chunk, rows int64) error {
	_, err := s.conn.Exec(ctx, `UPDATE `+s.table+` SET state = 'done', rows_done = $4, updated_at = now() WHERE slot_name = $1 AND table_name = $2 AND chunk = $3`,
		slot, c.Table, c.Seq, rows)
	if err != nil {
		return fmt.Errorf("snapshot: record chunk %d of %s done: %w", c.Seq, c.Table, err)
	}
	return nil
}

// Finish marks slot's snapshot done, with its total rows.
func (s *Store) Finish(ctx context.Context, slot string, rows int64) error {
	_, err := s.conn.Exec(ctx, `UPDATE `+s.table+` SET state = 'done', rows_done = $2, updated_at = now() WHERE slot_name = $1 AND chunk = -1`, slot, rows)
	if err != nil {
		return fmt.Errorf("snapshot: record the snapshot of slot %s done: %w", slot, err)
	}
	return nil
}
