package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/internal/check"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
	"github.com/pgcdc/pgcdc/pkg/slotrecord"
)

const statusSummary = `Usage: pgcdc status [--config FILE] [--json]

Shows the replication slot named by postgres.slot: its confirmed position, the lag behind the
server's WAL end, the WAL it retains, who holds it (walsender pid, user, application_name, client
address), and its wal_status.
Exit status: 0 when the slot exists and is usable, 1 when it is missing or invalidated (lost).
Only the postgres section of the configuration is needed.
`

func statusFlags(fs *flag.FlagSet) func(stdout, stderr io.Writer) int {
	configPath := configFlag(fs)
	asJSON := fs.Bool("json", false, "print the status as one JSON object")
	return func(stdout, stderr io.Writer) int {
		cfg, ok := loadPostgresConfig(*configPath, stderr)
		if !ok {
			return 2
		}
		conn, st, ok := readSlot(cfg, "pgcdc status", stderr)
		if !ok {
			return 1
		}
		defer conn.Close(context.Background())
		var holder *pgsource.SlotHolder
		if st.Active {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if h, err := pgsource.ReadSlotHolder(ctx, conn, cfg.Postgres.Slot); err == nil {
				holder = &h
			}
			cancel()
		}
		if *asJSON {
			out := map[string]any{
				"slot": st.Name, "exists": st.Exists, "plugin": st.Plugin, "database": st.Database,
				"active": st.Active, "active_pid": st.ActivePID, "wal_status": st.WALStatus, "safe_wal_size": st.SafeWALSize,
				"confirmed_flush_lsn": st.ConfirmedFlush.String(), "restart_lsn": st.RestartLSN.String(),
				"server_wal_end": st.ServerWALEnd.String(), "lag_bytes": st.LagBytes(), "retained_bytes": st.RetainedBytes(),
			}
			if holder != nil {
				out["holder"] = map[string]any{"pid": holder.PID, "user": holder.User, "application_name": holder.ApplicationName,
					"client_addr": holder.ClientAddr, "client_port": holder.ClientPort, "backend_start": holder.BackendStart}
			}
			b, _ := json.Marshal(out)
			fmt.Fprintln(stdout, string(b))
		} else {
			writeStatus(stdout, st, holder)
		}
		if !st.Exists || st.WALStatus == "lost" {
			return 1
		}
		return 0
	}
}

func writeStatus(w io.Writer, st pgsource.SlotInfo, holder *pgsource.SlotHolder) {
	var b strings.Builder
	row := func(k, format string, args ...any) { fmt.Fprintf(&b, "%-16s %s\n", k, fmt.Sprintf(format, args...)) }
	row("slot", "%s", st.Name)
	if !st.Exists {
		row("exists", "no: pgcdc run creates it (postgres.create_slot), capturing changes from that moment on")
		row("server WAL end", "%s", st.ServerWALEnd)
		_, _ = io.WriteString(w, b.String())
		return
	}
	row("plugin", "%s (database %s)", st.Plugin, st.Database)
	if holder != nil {
		row("active", "yes, held by %s", holder)
	} else if st.Active {
		row("active", "yes, walsender pid %d", st.ActivePID)
	} else {
		row("active", "no (pgcdc is not streaming from it)")
	}
	advice := map[string]string{
		"reserved":   "the WAL it needs is within max_wal_size",
		"extended":   "it holds more WAL than max_wal_size, within max_slot_wal_keep_size",
		"unreserved": "about to be invalidated: get pgcdc caught up now",
		"lost":       "invalidated: changes are lost to it; see docs/operations.md, \"Recovering from a lost slot\"",
	}[st.WALStatus]
	row("wal_status", "%s (%s)", st.WALStatus, advice)
	row("confirmed_flush", "%s", st.ConfirmedFlush)
	row("server WAL end", "%s", st.ServerWALEnd)
	row("lag", "%d bytes (%s) not yet confirmed", st.LagBytes(), check.BytesString(st.LagBytes()))
	row("restart_lsn", "%s (%s of WAL retained for the slot)", st.RestartLSN, check.BytesString(st.RetainedBytes()))
	if st.SafeWALSize < 0 {
		row("safe_wal_size", "unbounded (max_slot_wal_keep_size = -1)")
	} else {
		row("safe_wal_size", "%s more WAL before the slot is invalidated", check.BytesString(st.SafeWALSize))
	}
	_, _ = io.WriteString(w, b.String())
}

// readSlot connects with cfg's postgres section and reads the slot's state; on failure it prints
// the reason prefixed by cmd and returns ok false.
func readSlot(cfg config.Config, cmd string, stderr io.Writer) (*pgx.Conn, pgsource.SlotInfo, bool) {
	conn, err := connect(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return nil, pgsource.SlotInfo{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := pgsource.ReadSlotState(ctx, conn, cfg.Postgres.Slot)
	if err != nil {
		conn.Close(context.Background())
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return nil, pgsource.SlotInfo{}, false
	}
	return conn, st, true
}

// connect opens a regular PostgreSQL connection, bounded by postgres.connect_timeout (at most 30s).
func connect(cfg config.Config) (*pgx.Conn, error) {
	connStr, err := cfg.Postgres.ConnString()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(cfg.Postgres.ConnectTimeout, 30*time.Second))
	defer cancel()
	conn, err := pgsource.ConnectSQL(ctx, connStr)
	if err != nil {
		return nil, fmt.Errorf("%w (dsn %s)", err, cfg.Postgres.RedactedDSN())
	}
	return conn, nil
}

const slotDropSummary = `Usage: pgcdc slot drop --confirm [--config FILE]

Drops the replication slot named by postgres.slot. PostgreSQL then forgets the slot's position and
releases the WAL it retained: changes not yet sent to Kafka are lost to pgcdc, and the next
pgcdc run creates a new slot that captures changes from that moment on (rebuild downstream systems
from a fresh snapshot). Stop pgcdc first: a slot held by a running walsender cannot be dropped.
Without --confirm nothing is dropped.
`

func slotDropFlags(fs *flag.FlagSet) func(stdout, stderr io.Writer) int {
	configPath := configFlag(fs)
	confirm := fs.Bool("confirm", false, "really drop the slot (required)")
	return func(stdout, stderr io.Writer) int {
		cfg, ok := loadPostgresConfig(*configPath, stderr)
		if !ok {
			return 2
		}
		if !*confirm {
			fmt.Fprintf(stderr, "pgcdc slot drop: refusing to drop replication slot %q without --confirm: dropping it loses every change not yet sent to Kafka, and the next start captures from that moment on\n", cfg.Postgres.Slot)
			return 2
		}
		conn, st, ok := readSlot(cfg, "pgcdc slot drop", stderr)
		if !ok {
			return 1
		}
		defer conn.Close(context.Background())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if !st.Exists {
			fmt.Fprintf(stderr, "pgcdc slot drop: replication slot %q does not exist (check postgres.slot and the database in postgres.dsn)\n", cfg.Postgres.Slot)
			return 1
		}
		if st.Active {
			fmt.Fprintf(stderr, "pgcdc slot drop: replication slot %q is in use by walsender pid %d: stop the pgcdc that streams from it first\n", cfg.Postgres.Slot, st.ActivePID)
			return 1
		}
		if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, cfg.Postgres.Slot); err != nil {
			var pgErr *pgconn.PgError
			hint := ""
			if asPg(err, &pgErr) && pgErr.Code == "42501" {
				hint = ": the role needs REPLICATION (or superuser) to drop a slot"
			}
			fmt.Fprintf(stderr, "pgcdc slot drop: drop replication slot %q: %v%s\n", cfg.Postgres.Slot, err, hint)
			return 1
		}
		fmt.Fprintf(stdout, "dropped replication slot %s (it was at confirmed_flush_lsn %s, %s behind the server's WAL end)\n",
			cfg.Postgres.Slot, st.ConfirmedFlush, check.BytesString(st.LagBytes()))
		// pgcdc's record of the slot's confirmed position goes with it: the next start creates a new
		// slot on purpose, which the record would refuse as a slot created behind pgcdc's back.
		if store, err := slotrecord.Lookup(ctx, conn, cfg.Snapshot.ProgressSchema); err == nil {
			if err := store.Forget(ctx, conn, cfg.Postgres.Slot); err != nil {
				fmt.Fprintf(stderr, "pgcdc slot drop: %v (delete the slot's row from %s yourself, or the next start refuses the new slot)\n", err, store.Table())
				return 1
			}
		}
		return 0
	}
}

func asPg(err error, target **pgconn.PgError) bool { return errors.As(err, target) }
