package snapshot

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
// the table. Each row carries the role that wrote it (role_name), and row-level security shows
// and lets change a role only its own rows, so the table is granted to PUBLIC: any role that can
// use the schema keeps its progress there, and none can read or alter another's. The first pgcdc
// that needs the table creates it (it needs CREATE on the schema); later roles need nothing more
// than USAGE on the schema. A table created by an older pgcdc (without role_name) is used as it is
// and needs explicit grants for every other role: errors say which.
type Store struct {
	conn    *pgx.Conn
	schema  string
	table   string // quoted schema.table
	user    string // current_user
	owner   string // the table's owner
	perRole bool   // role_name column and row-level security (created by this version)
}

// DDL returns the statements that create the progress table in schema (for an administrator when
// pgcdc's role may not create tables).
func DDL(schema string) string {
	t := pgx.Identifier{schema, TableName}.Sanitize()
	return `CREATE TABLE ` + t + ` (
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
);
ALTER TABLE ` + t + ` ENABLE ROW LEVEL SECURITY;
CREATE POLICY pgcdc_own_rows ON ` + t + ` USING (role_name = current_user) WITH CHECK (role_name = current_user);
GRANT SELECT, INSERT, UPDATE, DELETE ON ` + t + ` TO PUBLIC`
}

// storeInfoSQL reads whether the table exists, its owner and whether it has per-role rows.
const storeInfoSQL = `
SELECT c.oid IS NOT NULL, coalesce(pg_get_userbyid(c.relowner)::text, ''),
       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'role_name' AND NOT a.attisdropped)
FROM (SELECT to_regclass($1) AS oid) r LEFT JOIN pg_class c ON c.oid = r.oid`

// OpenStore returns the store on conn, creating the table when it does not exist.
func OpenStore(ctx context.Context, conn *pgx.Conn, schema string) (*Store, error) {
	s := &Store{conn: conn, schema: schema, table: pgx.Identifier{schema, TableName}.Sanitize()}
	if err := conn.QueryRow(ctx, `SELECT current_user::text`).Scan(&s.user); err != nil {
		return nil, fmt.Errorf("snapshot: read the current role: %w", err)
	}
	exists, err := s.readInfo(ctx)
	if err != nil || exists {
		return s, err
	}
	if _, err := conn.Exec(ctx, DDL(schema)); err != nil {
		if exists, again := s.readInfo(ctx); again == nil && exists {
			return s, nil // another pgcdc created it meanwhile
		}
		return nil, fmt.Errorf("snapshot: role %s cannot create the progress table %s: %w. Grant it CREATE on schema %s (GRANT CREATE ON SCHEMA %s TO %s), "+
			"set snapshot.progress_schema to a schema where it may create tables, or have an administrator create the table once:\n%s;\n"+
			"Every role that runs pgcdc can then keep its progress there (each sees only its own rows)",
			s.user, s.table, err, s.schema, pgx.Identifier{s.schema}.Sanitize(), pgx.Identifier{s.user}.Sanitize(), DDL(schema))
	}
	if _, err := s.readInfo(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) readInfo(ctx context.Context) (exists bool, err error) {
	err = s.conn.QueryRow(ctx, storeInfoSQL, s.table).Scan(&exists, &s.owner, &s.perRole)
	if err != nil {
		return false, s.explain(err, "look for the progress table")
	}
	return exists, nil
}

// explain wraps an error of doing what with the table; a privilege error says exactly what to
// grant, and to whom.
func (s *Store) explain(err error, what string) error {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || pg.Code != "42501" { // insufficient_privilege
		return fmt.Errorf("snapshot: %s %s: %w", what, s.table, err)
	}
	user := pgx.Identifier{s.user}.Sanitize()
	switch {
	case strings.Contains(pg.Message, "schema"):
		return fmt.Errorf("snapshot: %s %s: %w. pgcdc's role needs USAGE on schema %s (snapshot.progress_schema): as an administrator, GRANT USAGE ON SCHEMA %s TO %s",
			what, s.table, err, s.schema, pgx.Identifier{s.schema}.Sanitize(), user)
	case !s.perRole:
		return fmt.Errorf("snapshot: %s %s: %w. The table was created by an older pgcdc (as role %s), without per-role rows: as %s or an administrator, run "+
			"GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %s; (or set snapshot.progress_schema to another schema, where pgcdc creates a table that every role can share)",
			what, s.table, err, s.owner, s.owner, s.table, user)
	default:
		return fmt.Errorf("snapshot: %s %s: %w. As the table's owner (%s) or an administrator, run GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %s",
			what, s.table, err, s.owner, s.table, user)
	}
}

// explainConflict explains a unique violation of slot's rows: with per-role rows, the rows exist
// but belong to another role, which this one cannot see.
func (s *Store) explainConflict(err error, slot string) error {
	var pg *pgconn.PgError
	if !s.perRole || !errors.As(err, &pg) || pg.Code != "23505" {
		return err
	}
	return fmt.Errorf("%w: the rows of slot %s belong to another role (each role sees only its own rows; this is %s). "+
		"If %s now runs that slot, hand them over as the table's owner (%s) or an administrator: UPDATE %s SET role_name = %s WHERE slot_name = %s; "+
		"or forget them (pgcdc then takes a new snapshot): DELETE FROM %s WHERE slot_name = %s",
		err, slot, s.user, s.user, s.owner, s.table, quoteLiteral(s.user), quoteLiteral(slot), s.table, quoteLiteral(slot))
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
		return st, s.explain(err, "read the progress of slot "+slot+" from")
	}
	if st.StartLSN, err = pglogrepl.ParseLSN(start); err != nil {
		return st, fmt.Errorf("snapshot: progress of slot %s: start_lsn %q: %w", slot, start, err)
	}
	rows, err := s.conn.Query(ctx, `SELECT table_name, chunk, ordinal, table_order, kind, lower_bound, upper_bound,
			last_in_table, first_in_snapshot, last_in_snapshot, rows_estimate, state = 'done', coalesce(rows_done, 0)
		FROM `+s.table+` WHERE slot_name = $1 AND chunk >= 0 ORDER BY ordinal`, slot)
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
	err := pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM `+s.table+` WHERE slot_name = $1`, slot); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO `+s.table+` (slot_name, table_name, chunk, state) VALUES ($1, '', -1, 'pending')`, slot)
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
	err := pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM `+s.table+` WHERE slot_name = $1 AND chunk >= 0`, slot); err != nil {
			return err
		}
		for _, c := range chunks {
			if _, err := tx.Exec(ctx, `INSERT INTO `+s.table+` (slot_name, table_name, chunk, ordinal, table_order, kind, lower_bound, upper_bound,
					last_in_table, first_in_snapshot, last_in_snapshot, rows_estimate, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
				slot, c.Table, c.Seq, c.Ordinal, c.TableOrder, string(c.Kind), c.Lower, c.Upper,
				c.LastInTable, c.FirstInSnapshot, c.LastInSnapshot, c.Estimate, "todo"); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, `UPDATE `+s.table+` SET state = 'running', start_lsn = $2::text::pg_lsn, updated_at = now() WHERE slot_name = $1 AND chunk = -1`,
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
	tag, err := s.conn.Exec(ctx, `UPDATE `+s.table+` SET state = 'done', rows_done = $4, updated_at = now() WHERE slot_name = $1 AND table_name = $2 AND chunk = $3`,
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
	tag, err := s.conn.Exec(ctx, `UPDATE `+s.table+` SET state = 'done', rows_done = $2, updated_at = now() WHERE slot_name = $1 AND chunk = -1`, slot, rows)
	if err == nil && tag.RowsAffected() != 1 {
		err = s.missingRow(slot, "the snapshot's own row")
	}
	if err != nil {
		return s.explain(err, "record the snapshot of slot "+slot+" done in")
	}
	return nil
}

// missingRow: a progress row the snapshot wrote is gone (deleted, or handed to another role).
func (s *Store) missingRow(slot, which string) error {
	return fmt.Errorf("the progress row of slot %s (%s) is gone: deleted meanwhile, or (per-role rows) now owned by a role other than %s", slot, which, s.user)
}
