package pgsource

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SlotInfo is the state of a replication slot, as PostgreSQL reports it.
type SlotInfo struct {
	Name           string
	Exists         bool
	Plugin         string
	Database       string
	Active         bool
	ActivePID      int32  // 0 when no walsender holds it
	WALStatus      string // reserved, extended, unreserved, lost
	SafeWALSize    int64  // bytes; -1 when unbounded (max_slot_wal_keep_size = -1)
	ConfirmedFlush pglogrepl.LSN
	RestartLSN     pglogrepl.LSN
	ServerWALEnd   pglogrepl.LSN // pg_current_wal_lsn() (the replay position on a standby)
	Created        bool          // created by EnsureSlot just now
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

// LagBytes is the server's WAL end minus the slot's confirmed_flush_lsn: WAL not yet confirmed.
func (s SlotInfo) LagBytes() int64 { return lsnDiff(s.ServerWALEnd, s.ConfirmedFlush) }

// RetainedBytes is the server's WAL end minus restart_lsn: WAL kept on disk for the slot.
func (s SlotInfo) RetainedBytes() int64 { return lsnDiff(s.ServerWALEnd, s.RestartLSN) }

func lsnDiff(a, b pglogrepl.LSN) int64 {
	if a > b && b != 0 {
		return int64(a - b)
	}
	return 0
}

// ErrSlotMissing says the slot does not exist.
var ErrSlotMissing = errors.New("replication slot does not exist")

const slotStateSQL = `
SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text,
       s.slot_name IS NOT NULL, coalesce(s.slot_type = 'logical', false), coalesce(s.plugin, ''), coalesce(s.database, ''),
       coalesce(s.active, false), coalesce(s.active_pid, 0), coalesce(s.wal_status, ''), coalesce(s.safe_wal_size, -1),
       coalesce(s.confirmed_flush_lsn::text, ''), coalesce(s.restart_lsn::text, ''), coalesce(s.temporary, false),
       -- failover and synced exist from PostgreSQL 17 on: read through to_jsonb, absent is NULL
       coalesce((to_jsonb(s) ->> 'failover')::bool, false), coalesce((to_jsonb(s) ->> 'synced')::bool, false)
FROM (SELECT 1) one LEFT JOIN pg_replication_slots s ON s.slot_name = $1`

// ReadSlotState reads slot name's state and the server's WAL end. A missing slot is not an error:
// Exists is false. A position PostgreSQL reports in a form pgcdc cannot parse is an error, never 0.
func ReadSlotState(ctx context.Context, conn *pgx.Conn, name string) (SlotInfo, error) {
	s := SlotInfo{Name: name}
	var end, confirmed, restart string
	var logical bool
	err := conn.QueryRow(ctx, slotStateSQL, name).Scan(&end, &s.Exists, &logical, &s.Plugin, &s.Database,
		&s.Active, &s.ActivePID, &s.WALStatus, &s.SafeWALSize, &confirmed, &restart, &s.Temporary, &s.Failover, &s.Synced)
	if err != nil {
		return s, fmt.Errorf("postgres: read replication slot %q: %w", name, err)
	}
	if s.Exists && !logical {
		return s, fmt.Errorf("postgres: replication slot %q is a physical slot: choose another postgres.slot", name)
	}
	for _, f := range []struct {
		text string
		dst  *pglogrepl.LSN
		what string
	}{{end, &s.ServerWALEnd, "WAL end"}, {confirmed, &s.ConfirmedFlush, "confirmed_flush_lsn"}, {restart, &s.RestartLSN, "restart_lsn"}} {
		if f.text == "" {
			continue // NULL: a slot still being created has no position yet
		}
		if *f.dst, err = pglogrepl.ParseLSN(f.text); err != nil {
			return s, fmt.Errorf("postgres: replication slot %q: %s %q: %w", name, f.what, f.text, err)
		}
	}
	return s, nil
}

// ReadSlot reads slot name's state; a missing slot is ErrSlotMissing.
func ReadSlot(ctx context.Context, conn *pgx.Conn, name string) (SlotInfo, error) {
	s, err := ReadSlotState(ctx, conn, name)
	if err == nil && !s.Exists {
		err = fmt.Errorf("postgres: logical replication slot %q: %w", name, ErrSlotMissing)
	}
	return s, err
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
