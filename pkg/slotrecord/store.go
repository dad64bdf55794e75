package slotrecord

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TableName is the record table's name (in the configured schema).
const TableName = "pgcdc_slot_position"

// ErrNoTable says the record table does not exist and could not be created.
var ErrNoTable = errors.New("slot position table missing")

// DDL returns the statements an administrator runs to create the record table in schema and let
// role use it (role "" leaves out the GRANT).
func DDL(schema, role string) string {
	table := pgx.Identifier{schema, TableName}.Sanitize()
	s := `CREATE TABLE IF NOT EXISTS ` + table + ` (
  slot_name     text        PRIMARY KEY,
  confirmed_lsn pg_lsn      NOT NULL,              -- never below a position pgcdc confirmed on the slot
  updated_at    timestamptz NOT NULL DEFAULT now()
)`
	if role != "" {
		r := pgx.Identifier{role}.Sanitize()
		s += ";\nGRANT USAGE ON SCHEMA " + pgx.Identifier{schema}.Sanitize() + " TO " + r +
			";\nGRANT SELECT, INSERT, UPDATE, DELETE ON " + table + " TO " + r
	}
	return s
}

// Querier is the part of *pgx.Conn the store uses.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Store reads and writes the records of one database, through whichever connection the caller
// passes (a connector replaces its connection after a reconnect).
type Store struct {
	table string // quoted schema.table
}

// Open returns the store of the table in schema, creating the table when it is missing. When it is
// missing and cannot be created the error wraps ErrNoTable and carries the DDL for an administrator.
func Open(ctx context.Context, conn Querier, schema string) (*Store, error) {
	s := &Store{table: pgx.Identifier{schema, TableName}.Sanitize()}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, s.table).Scan(&exists); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42501" { // no USAGE on the schema
			return nil, fmt.Errorf("%w: cannot use schema %s (%v); have an administrator run:\n%s", ErrNoTable, schema, err, DDL(schema, "<pgcdc role>"))
		}
		return nil, fmt.Errorf("slot position: look for %s: %w", s.table, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, DDL(schema, "")); err != nil {
			return nil, fmt.Errorf("%w: cannot create %s (%v); have an administrator run:\n%s", ErrNoTable, s.table, err, DDL(schema, "<pgcdc role>"))
		}
	}
	return s, nil
}

// Table is the quoted name of the record table.
func (s *Store) Table() string { return s.table }

// Record is the stored position of one slot.
type Record struct {
	Found     bool
	Confirmed pglogrepl.LSN
	UpdatedAt time.Time
}

// Load reads slot's record (Found false when there is none).
func (s *Store) Load(ctx context.Context, conn Querier, slot string) (Record, error) {
	var r Record
	var lsn string
	err := conn.QueryRow(ctx, `SELECT confirmed_lsn::text, updated_at FROM `+s.table+` WHERE slot_name = $1`, slot).Scan(&lsn, &r.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("slot position: read the record of slot %s from %s: %w", slot, s.table, err)
	}
	if r.Confirmed, err = pglogrepl.ParseLSN(lsn); err != nil {
		return r, fmt.Errorf("slot position: record of slot %s: %w", slot, err)
	}
	r.Found = true
	return r, nil
}

// recordSQL writes the greater of the position and the server's WAL insert position, never lowering
// an existing record, and commits with synchronous_commit = local (durable on this server before
// the status update that follows), whatever the role's default.
const recordSQL = `
INSERT INTO %[1]s AS r (slot_name, confirmed_lsn, updated_at)
SELECT $1, greatest($2::text::pg_lsn, pg_current_wal_insert_lsn()), now()
FROM (SELECT set_config('synchronous_commit', 'local', true)) AS durable
ON CONFLICT (slot_name) DO UPDATE
  SET confirmed_lsn = greatest(r.confirmed_lsn, excluded.confirmed_lsn), updated_at = excluded.updated_at
RETURNING confirmed_lsn::text`

// Record durably records that pgcdc may confirm slot up to lsn, and returns the recorded position
// (at least lsn; see the package documentation).
func (s *Store) Record(ctx context.Context, conn Querier, slot string, lsn pglogrepl.LSN) (pglogrepl.LSN, error) {
	rec, _, err := s.record(ctx, conn, slot, lsn)
	return rec, err
}

// record is Record, and also returns the server's WAL insert position once the write committed (at
// or past the end of the write's own WAL).
func (s *Store) record(ctx context.Context, conn Querier, slot string, lsn pglogrepl.LSN) (rec, end pglogrepl.LSN, err error) {
	var got, after string
	if err := conn.QueryRow(ctx, fmt.Sprintf(recordSQL, s.table), slot, lsn.String()).Scan(&got); err != nil {
		return 0, 0, fmt.Errorf("slot position: record %s for slot %s in %s: %w", lsn, slot, s.table, err)
	}
	if rec, err = pglogrepl.ParseLSN(got); err != nil {
		return 0, 0, err
	}
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&after); err != nil {
		return rec, 0, fmt.Errorf("slot position: read the WAL position after recording slot %s: %w", slot, err)
	}
	end, err = pglogrepl.ParseLSN(after)
	return rec, end, err
}

// Forget deletes slot's record (the slot was dropped on purpose, or is being created anew).
func (s *Store) Forget(ctx context.Context, conn Querier, slot string) error {
	if _, err := conn.Exec(ctx, `DELETE FROM `+s.table+` WHERE slot_name = $1`, slot); err != nil {
		return fmt.Errorf("slot position: delete the record of slot %s from %s: %w", slot, s.table, err)
	}
	return nil
}

// Lookup returns the store of the table in schema when the table exists, without creating it
// (ErrNoTable otherwise): for read-only inspection such as pgcdc check.
func Lookup(ctx context.Context, conn Querier, schema string) (*Store, error) {
	s := &Store{table: pgx.Identifier{schema, TableName}.Sanitize()}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, s.table).Scan(&exists); err != nil {
		return nil, fmt.Errorf("slot position: look for %s: %w", s.table, err)
	}
	if !exists {
		return nil, ErrNoTable
	}
	return s, nil
}
