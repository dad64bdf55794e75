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
	// Failover: a failover slot (PostgreSQL 17+), synchronized to standbys that have
	// sync_replication_slots on. Synced: on a standby, a copy synchronized from the primary (on a
	// promoted standby it stays true). Temporary: a temporary slot (a standby's copy is temporary
	// until its first synchronization completes). All false before PostgreSQL 17.
	Failover, Synced, Temporary bool
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
	// failover and synced exist from PostgreSQL 17 on: read through to_jsonb, absent is NULL.
	err := conn.QueryRow(ctx, `SELECT plugin, database, confirmed_flush_lsn::text, restart_lsn::text, wal_status, active_pid,
			temporary, coalesce((to_jsonb(s) ->> 'failover')::bool, false), coalesce((to_jsonb(s) ->> 'synced')::bool, false)
		FROM pg_replication_slots s WHERE slot_name = $1 AND slot_type = 'logical'`, name).
		Scan(&plugin, &db, &confirmed, &restart, &walStatus, &pid, &s.Temporary, &s.Failover, &s.Synced)
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
	return EnsureSlotWith(ctx, conn, repl, name, database, SlotOptions{Create: create})
}

// EnsureSlotExport is EnsureSlot that, when it creates the slot and export is true, creates it
// with EXPORT_SNAPSHOT and returns the snapshot's name in SlotInfo.SnapshotName. The caller must
// then keep repl open and idle until every reader has imported the snapshot.
func EnsureSlotExport(ctx context.Context, conn *pgx.Conn, repl *pgconn.PgConn, name, database string, create, export bool) (SlotInfo, error) {
	return EnsureSlotWith(ctx, conn, repl, name, database, SlotOptions{Create: create, Export: export})
}

// SlotOptions say how EnsureSlotWith creates or adjusts a slot.
type SlotOptions struct {
	Create bool // create the slot when it is missing
	Export bool // create it with an exported snapshot (see EnsureSlotExport)
	// Failover makes it a failover slot (PostgreSQL 17+, postgres.failover_slot): created with
	// FAILOVER, or altered with ALTER_REPLICATION_SLOT when it exists without it.
	Failover bool
}

// EnsureSlotWith returns the slot's state, creating it (through the replication connection) when it
// is missing and o.Create is true, and turning failover on when o.Failover asks for it.
func EnsureSlotWith(ctx context.Context, conn *pgx.Conn, repl *pgconn.PgConn, name, database string, o SlotOptions) (SlotInfo, error) {
	s, err := ReadSlot(ctx, conn, name)
	if errors.Is(err, ErrSlotMissing) {
		if !o.Create {
			return s, fmt.Errorf("%w; create it (SELECT pg_create_logical_replication_slot('%s', 'pgoutput')) or set postgres.create_slot: true", err, name)
		}
		res, cerr := createSlot(ctx, repl, name, o.Export, o.Failover)
		if cerr != nil {
			var pgErr *pgconn.PgError
			if !errors.As(cerr, &pgErr) || pgErr.Code != "42710" { // 42710: created concurrently
				return s, fmt.Errorf("postgres: create replication slot %q: %w", name, describe(cerr))
			}
		}
		s, err = ReadSlot(ctx, conn, name)
		s.Created = err == nil && cerr == nil
		if s.Created && o.Export {
			s.SnapshotName = res.SnapshotName
		}
	}
	if err != nil {
		return s, err
	}
	if err := CheckSlot(s, database); err != nil {
		return s, err
	}
	if o.Failover && !s.Failover {
		if err := alterFailover(ctx, repl, name); err != nil {
			return s, err
		}
		s.Failover = true
	}
	return s, nil
}

// createSlot creates a logical pgoutput slot. A failover slot needs the option list of PostgreSQL
// 15+'s CREATE_REPLICATION_SLOT (FAILOVER from 17 on), which pglogrepl does not offer.
func createSlot(ctx context.Context, repl *pgconn.PgConn, name string, export, failover bool) (pglogrepl.CreateReplicationSlotResult, error) {
	if !failover {
		action := "NOEXPORT_SNAPSHOT"
		if export {
			action = "EXPORT_SNAPSHOT"
		}
		return pglogrepl.CreateReplicationSlot(ctx, repl, name, "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: action})
	}
	return pglogrepl.ParseCreateReplicationSlot(repl.Exec(ctx, createFailoverSlotSQL(name, export)))
}

// createFailoverSlotSQL is the replication command that creates a failover slot. Slot names are
// [a-z0-9_] (config validation), so they need no quoting.
func createFailoverSlotSQL(name string, export bool) string {
	snapshot := "nothing"
	if export {
		snapshot = "export"
	}
	return fmt.Sprintf("CREATE_REPLICATION_SLOT %s LOGICAL pgoutput (SNAPSHOT '%s', FAILOVER true)", name, snapshot)
}

// alterFailover turns failover on for an existing slot (PostgreSQL 17+). The slot must not be in
// use by another walsender.
func alterFailover(ctx context.Context, repl *pgconn.PgConn, name string) error {
	if _, err := repl.Exec(ctx, fmt.Sprintf("ALTER_REPLICATION_SLOT %s (FAILOVER true)", name)).ReadAll(); err != nil {
		return fmt.Errorf("postgres: turn failover on for replication slot %q (postgres.failover_slot: true): %w", name, describe(err))
	}
	return nil
}

// CheckFailover refuses postgres.failover_slot on a server that has no failover slots.
func CheckFailover(info ServerInfo, want bool) error {
	if want && info.Version < 170000 {
		return fmt.Errorf("postgres.failover_slot: true needs PostgreSQL 17 or newer (the server is %d.%d): set it to false; pgcdc then checks its recorded position after a failover instead (docs/failover.md)",
			info.Version/10000, info.Version%10000)
	}
	return nil
}
