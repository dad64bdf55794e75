package pgsource

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SlotInfo is the state of a replication slot.
type SlotInfo struct {
	Name           string
	Plugin         string
	Database       string
	ConfirmedFlush pglogrepl.LSN
	RestartLSN     pglogrepl.LSN
	WALStatus      string // reserved, extended, unreserved, lost
	ActivePID      int32  // 0 when no walsender holds it
	Created        bool   // created by EnsureSlot just now
	// SnapshotName is the snapshot exported when EnsureSlotExport created the slot ("" otherwise):
	// it shows the database exactly at the slot's consistent point (ConfirmedFlush) and is valid
	// only while the replication connection that created the slot stays open and runs no other
	// command. Import it with SET TRANSACTION SNAPSHOT in a REPEATABLE READ transaction.
	SnapshotName string
}

// ErrSlotMissing says the slot does not exist.
var ErrSlotMissing = errors.New("replication slot does not exist")

// ReadSlot reads slot name's state.
func ReadSlot(ctx context.Context, conn *pgx.Conn, name string) (SlotInfo, error) {
	s := SlotInfo{Name: name}
	var confirmed, restart, plugin, db, walStatus *string
	var pid *int32
	err := conn.QueryRow(ctx, `SELECT plugin, database, confirmed_flush_lsn::text, restart_lsn::text, wal_status, active_pid
		FROM pg_replication_slots WHERE slot_name = $1 AND slot_type = 'logical'`, name).
		Scan(&plugin, &db, &confirmed, &restart, &walStatus, &pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, fmt.Errorf("postgres: logical replication slot %q: %w", name, ErrSlotMissing)
	}
	if err != nil {
		return s, fmt.Errorf("postgres: read replication slot %q: %w", name, err)
	}
	s.Plugin, s.Database = deref(plugin), deref(db)
	s.WALStatus = deref(walStatus)
	if pid != nil {
		s.ActivePID = *pid
	}
	if confirmed != nil {
		s.ConfirmedFlush, _ = pglogrepl.ParseLSN(*confirmed)
	}
	if restart != nil {
		s.RestartLSN, _ = pglogrepl.ParseLSN(*restart)
	}
	return s, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// CheckSlot refuses a slot that cannot serve pgcdc: another plugin or database, or invalidated.
// An invalidated slot is never recreated silently: the changes it no longer holds are lost to it.
func CheckSlot(s SlotInfo, database string) error {
	if s.Plugin != "pgoutput" {
		return fmt.Errorf("postgres: replication slot %q uses plugin %q, pgcdc needs pgoutput: choose another postgres.slot", s.Name, s.Plugin)
	}
	if s.Database != database {
		return fmt.Errorf("postgres: replication slot %q belongs to database %q, not %q: choose another postgres.slot", s.Name, s.Database, database)
	}
	if s.WALStatus == "lost" {
		return fmt.Errorf("postgres: replication slot %q is invalidated (wal_status = lost): PostgreSQL removed WAL it still needed (max_slot_wal_keep_size), so changes were lost to it. "+
			"Recover: drop it (pgcdc slot drop --confirm, or SELECT pg_drop_replication_slot('%s')), start pgcdc again to create a new slot, and re-snapshot the tables; see docs/operations.md", s.Name, s.Name)
	}
	if s.ConfirmedFlush == 0 {
		return fmt.Errorf("postgres: replication slot %q has no confirmed position (is it still being created?)", s.Name)
	}
	return nil
}

// EnsureSlot returns the slot's state, creating it (through the replication connection) when it
// is missing and create is true.
func EnsureSlot(ctx context.Context, conn *pgx.Conn, repl *pgconn.PgConn, name, database string, create bool) (SlotInfo, error) {
	return EnsureSlotExport(ctx, conn, repl, name, database, create, false)
}

// EnsureSlotExport is EnsureSlot that, when it creates the slot and export is true, creates it
// with EXPORT_SNAPSHOT and returns the snapshot's name in SlotInfo.SnapshotName. The caller must
// then keep repl open and idle until every reader has imported the snapshot.
func EnsureSlotExport(ctx context.Context, conn *pgx.Conn, repl *pgconn.PgConn, name, database string, create, export bool) (SlotInfo, error) {
	s, err := ReadSlot(ctx, conn, name)
	if errors.Is(err, ErrSlotMissing) {
		if !create {
			return s, fmt.Errorf("%w; create it (SELECT pg_create_logical_replication_slot('%s', 'pgoutput')) or set postgres.create_slot: true", err, name)
		}
		action := "NOEXPORT_SNAPSHOT"
		if export {
			action = "EXPORT_SNAPSHOT"
		}
		res, cerr := pglogrepl.CreateReplicationSlot(ctx, repl, name, "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: action})
		if cerr != nil {
			var pgErr *pgconn.PgError
			if !errors.As(cerr, &pgErr) || pgErr.Code != "42710" { // 42710: created concurrently
				return s, fmt.Errorf("postgres: create replication slot %q: %w", name, describe(cerr))
			}
		}
		s, err = ReadSlot(ctx, conn, name)
		s.Created = err == nil && cerr == nil
		if s.Created && export {
			s.SnapshotName = res.SnapshotName
		}
	}
	if err != nil {
		return s, err
	}
	return s, CheckSlot(s, database)
}
