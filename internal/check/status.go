package check

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// SlotStatus is a replication slot's state as PostgreSQL reports it.
type SlotStatus struct {
	Name           string
	Exists         bool
	Plugin         string
	Database       string
	Active         bool
	ActivePID      int32
	WALStatus      string // reserved, extended, unreserved, lost
	SafeWALSize    int64  // bytes; -1 when unbounded (max_slot_wal_keep_size = -1)
	ConfirmedFlush pglogrepl.LSN
	RestartLSN     pglogrepl.LSN
	ServerWALEnd   pglogrepl.LSN // pg_current_wal_lsn() (the replay position on a standby)
}

// LagBytes is the server's WAL end minus the slot's confirmed_flush_lsn: WAL not yet confirmed.
func (s SlotStatus) LagBytes() int64 { return diff(s.ServerWALEnd, s.ConfirmedFlush) }

// RetainedBytes is the server's WAL end minus restart_lsn: WAL kept on disk for the slot.
func (s SlotStatus) RetainedBytes() int64 { return diff(s.ServerWALEnd, s.RestartLSN) }

func diff(a, b pglogrepl.LSN) int64 {
	if a > b && b != 0 {
		return int64(a - b)
	}
	return 0
}

const slotStatusSQL = `
SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text,
       s.slot_name IS NOT NULL, coalesce(s.plugin, ''), coalesce(s.database, ''), coalesce(s.active, false),
       coalesce(s.active_pid, 0), coalesce(s.wal_status, ''), coalesce(s.safe_wal_size, -1),
       coalesce(s.confirmed_flush_lsn, '0/0')::text, coalesce(s.restart_lsn, '0/0')::text
FROM (SELECT 1) one LEFT JOIN pg_replication_slots s ON s.slot_name = $1`

// ReadSlot reads slot's state and the server's WAL end. A missing slot is not an error: Exists is
// false.
func ReadSlot(ctx context.Context, conn *pgx.Conn, slot string) (SlotStatus, error) {
	st := SlotStatus{Name: slot}
	var end, confirmed, restart string
	err := conn.QueryRow(ctx, slotStatusSQL, slot).Scan(&end, &st.Exists, &st.Plugin, &st.Database, &st.Active,
		&st.ActivePID, &st.WALStatus, &st.SafeWALSize, &confirmed, &restart)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("postgres: read replication slot %q: %w", slot, err)
	}
	st.ServerWALEnd, _ = pglogrepl.ParseLSN(end)
	st.ConfirmedFlush, _ = pglogrepl.ParseLSN(confirmed)
	st.RestartLSN, _ = pglogrepl.ParseLSN(restart)
	return st, nil
}
