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
//
// Several pgcdc processes, each with its own slot and possibly its own least-privilege role, share
// the table (an OwnedTable): each row carries the role that wrote it and row-level security shows
// each role its own. A table created by an older pgcdc (without role_name) is used as it is and
// needs explicit grants for every other role: errors say which.
type Store struct {
	*OwnedTable
}

// DDL returns the statements that create the progress table in schema (for an administrator when
// pgcdc's role may not create tables).
func DDL(schema string) string {
	t := pgx.Identifier{schema, TableName}.Sanitize()
	return OwnedDDL(t, `CREATE TABLE `+t+` (
  role_name         text    NOT NULL DEFAULT current_user, -- the role that owns the row (row-level security)
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
)`)
}

// OpenStore returns the store on conn, creating the table when it does not exist.
func OpenStore(ctx context.Context, conn *pgx.Conn, schema string) (*Store, error) {
	o, err := OpenOwnedTable(ctx, conn, schema, TableName, DDL(schema))
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return &Store{o}, nil
}

// explain wraps an error of doing what with the table (see OwnedTable.Explain).
func (s *Store) explain(err error, what string) error {
	return fmt.Errorf("snapshot: %w", s.Explain(err, what))
}

// explainConflict explains a unique violation of slot's rows (see OwnedTable.ExplainConflict).
func (s *Store) explainConflict(err error, slot string) error {
	return s.ExplainConflict(err, slot, "pgcdc then takes a new snapshot")
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
	err := s.Conn.QueryRow(ctx, `SELECT state, coalesce(start_lsn::text, '0/0') FROM `+s.Table+` WHERE slot_name = $1 AND chunk = -1`, slot).Scan(&st.Status, &start)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, s.explain(err, "read the progress of slot "+slot+" from")
	}
	if st.StartLSN, err = pglogrepl.ParseLSN(start); err != nil {
		return st, fmt.Errorf("snapshot: progress of slot %s: start_lsn %q: %w", slot, start, err)
	}
	rows, err := s.Conn.Query(ctx, `SELECT table_name, chunk, ordinal, table_order, kind, lower_bound, upper_bound,
			last_in_table, first_in_snapshot, last_in_snapshot, rows_estimate, state = 'done', coalesce(rows_done, 0)
		FROM `+s.Table+` WHERE slot_name = $1 AND chunk >= 0 ORDER BY ordinal`, slot)
	if err != nil {
		return st, s.explain(err, "read the progress of slot "+slot+" from")
	}
	for rows.Next() {
		c := &Chunk{}
		var kind string
		if err := rows.Scan(&c.Table, &c.Seq, &c.Ordinal, &c.TableOrder, &kind, &c.Lower, &c.Upper,
			&c.LastInTable, &c.FirstInSnapshot, &c.LastInSnapshot, &c.Estimate, &c.Done, &c.Rows); err != nil {
			rows.Close()
			return st, s.explain(err, "read the progress of slot "+slot+" from")
		}
		c.Kind = Kind(kind)
		st.Chunks = append(st.Chunks, c)
	}
	return st, rows.Err()
}

// Begin records that slot needs a snapshot, forgetting any earlier one. It is written before the
// slot is created, so that a crash in between is seen as a snapshot still to do.
func (s *Store) Begin(ctx context.Context, slot string) error {
	err := pgx.BeginFunc(ctx, s.Conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM `+s.Table+` WHERE slot_name = $1`, slot); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO `+s.Table+` (slot_name, table_name, chunk, state) VALUES ($1, '', -1, 'pending')`, slot)
		return err
	})
	if err != nil {
		return s.explain(s.explainConflict(err, slot), "record the start of slot "+slot+"'s snapshot in")
	}
	return nil
}

// SavePlan records the plan of slot's snapshot and marks it running. startLSN is the slot's
// confirmed position: a resume is valid only while the slot has not moved (nor been recreated).
func (s *Store) SavePlan(ctx context.Context, slot string, chunks []*Chunk, startLSN pglogrepl.LSN) error {
	err := pgx.BeginFunc(ctx, s.Conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM `+s.Table+` WHERE slot_name = $1 AND chunk >= 0`, slot); err != nil {
			return err
		}
		for _, c := range chunks {
			if _, err := tx.Exec(ctx, `INSERT INTO `+s.Table+` (slot_name, table_name, chunk, ordinal, table_order, kind, lower_bound, upper_bound,
					last_in_table, first_in_snapshot, last_in_snapshot, rows_estimate, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
				slot, c.Table, c.Seq, c.Ordinal, c.TableOrder, string(c.Kind), c.Lower, c.Upper,
				c.LastInTable, c.FirstInSnapshot, c.LastInSnapshot, c.Estimate, "todo"); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, `UPDATE `+s.Table+` SET state = 'running', start_lsn = $2::text::pg_lsn, updated_at = now() WHERE slot_name = $1 AND chunk = -1`,
			slot, startLSN.String())
		if err == nil && tag.RowsAffected() != 1 {
			err = s.missingRow(slot, "the snapshot's own row")
		}
		return err
	})
	if err != nil {
		return s.explain(s.explainConflict(err, slot), "record the plan of slot "+slot+"'s snapshot in")
	}
	return nil
}

// MarkDone records chunk c of slot's snapshot as acknowledged, with the rows it read.
func (s *Store) MarkDone(ctx context.Context, slot string, c *Chunk, rows int64) error {
	tag, err := s.Conn.Exec(ctx, `UPDATE `+s.Table+` SET state = 'done', rows_done = $4, updated_at = now() WHERE slot_name = $1 AND table_name = $2 AND chunk = $3`,
		slot, c.Table, c.Seq, rows)
	if err == nil && tag.RowsAffected() != 1 {
		err = s.missingRow(slot, fmt.Sprintf("chunk %d of %s", c.Seq, c.Table))
	}
	if err != nil {
		return s.explain(err, fmt.Sprintf("record chunk %d of %s done in", c.Seq, c.Table))
	}
	return nil
}

// Finish marks slot's snapshot done, with its total rows.
func (s *Store) Finish(ctx context.Context, slot string, rows int64) error {
	tag, err := s.Conn.Exec(ctx, `UPDATE `+s.Table+` SET state = 'done', rows_done = $2, updated_at = now() WHERE slot_name = $1 AND chunk = -1`, slot, rows)
	if err == nil && tag.RowsAffected() != 1 {
		err = s.missingRow(slot, "the snapshot's own row")
	}
	if err != nil {
		return s.explain(err, "record the snapshot of slot "+slot+" done in")
	}
	return nil
}

// missingRow: a progress row the snapshot wrote is gone.
func (s *Store) missingRow(slot, which string) error { return s.MissingRow(slot, which) }
