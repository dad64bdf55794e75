package check

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
	"github.com/pgcdc/pgcdc/pkg/slotrecord"
)

// checkVersionFeatures checks what the configuration asks of the server's version (publication row
// filters and column lists need 15+, failover slots 17+), and how the slot would survive a
// failover: failover slots possible but off, a standby that does not synchronize, and the slot
// against pgcdc's record of the last position it confirmed (docs/failover.md).
func checkVersionFeatures(ctx context.Context, conn *pgx.Conn, cfg config.Config, f serverFacts, r *Report) {
	if (len(cfg.Tables.RowFilters) > 0 || len(cfg.Tables.Columns) > 0) && f.versionNum < 150000 {
		r.add(Fail, "publication", "remove tables.row_filters and tables.columns, or upgrade to PostgreSQL 15+",
			"tables.row_filters and tables.columns need PostgreSQL 15 or newer (publication row filters and column lists); the server is %s", f.version)
	}
	checkRecord(ctx, conn, cfg, r)
	if f.inRecovery {
		return // the checks below are about a primary
	}
	if f.versionNum < 170000 {
		if cfg.Postgres.FailoverSlot {
			r.add(Fail, "failover", "set postgres.failover_slot: false, or upgrade to PostgreSQL 17+",
				"postgres.failover_slot: true needs PostgreSQL 17 or newer; the server is %s", f.version)
			return
		}
		r.add(Info, "failover", "", "PostgreSQL %s has no failover slots: after a failover to a standby the slot is gone, and pgcdc refuses to continue on a new one (recovery: snapshot.mode when_needed; docs/failover.md)", f.version)
		return
	}
	if !cfg.Postgres.FailoverSlot {
		r.add(Warn, "failover", "set postgres.failover_slot: true and let a standby synchronize the slot (docs/failover.md)",
			"PostgreSQL %s has failover slots but postgres.failover_slot is false: after a failover to a standby the slot is gone, and pgcdc can continue only with a new snapshot", f.version)
		return
	}
	var failover bool
	err := conn.QueryRow(ctx, `SELECT failover FROM pg_replication_slots WHERE slot_name = $1`, cfg.Postgres.Slot).Scan(&failover)
	if err == nil && !failover {
		r.add(Info, "failover", "", "replication slot %s is not a failover slot yet: pgcdc turns failover on at its next start (ALTER_REPLICATION_SLOT)", cfg.Postgres.Slot)
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		r.add(Fail, "failover", "", "cannot read replication slot %s: %v", cfg.Postgres.Slot, err)
		return
	}
	checkStandbySync(ctx, conn, r)
}

// checkStandbySync looks, from the primary, for a standby that synchronizes failover slots: the
// physical slots named in synchronized_standby_slots must exist and be in use.
func checkStandbySync(ctx context.Context, conn *pgx.Conn, r *Report) {
	const fix = "on the standby: primary_slot_name, hot_standby_feedback = on, sync_replication_slots = on, dbname in primary_conninfo; on the primary: synchronized_standby_slots = '<the standby's physical slot>' (docs/failover.md)"
	var setting string
	if err := conn.QueryRow(ctx, `SELECT current_setting('synchronized_standby_slots')`).Scan(&setting); err != nil {
		r.add(Warn, "failover", "", "cannot read synchronized_standby_slots: %v", err)
		return
	}
	rows, err := conn.Query(ctx, `SELECT slot_name, active FROM pg_replication_slots WHERE slot_type = 'physical'`)
	if err != nil {
		r.add(Warn, "failover", "", "cannot read the physical replication slots: %v", err)
		return
	}
	active := map[string]bool{}
	for rows.Next() {
		var name string
		var a bool
		if err := rows.Scan(&name, &a); err != nil {
			rows.Close()
			return
		}
		active[name] = a
	}
	rows.Close()
	if strings.TrimSpace(setting) == "" {
		r.add(Warn, "failover", fix, "synchronized_standby_slots is empty: no standby is known to synchronize the failover slot, and pgcdc may receive changes before any standby has them (after a failover they would be in Kafka but not in the database)")
		return
	}
	var missing, idle []string
	for _, s := range strings.Split(setting, ",") {
		s = strings.TrimSpace(s)
		a, ok := active[s]
		switch {
		case !ok:
			missing = append(missing, s)
		case !a:
			idle = append(idle, s)
		}
	}
	if len(missing)+len(idle) > 0 {
		r.add(Warn, "failover", fix, "the standby is not synchronizing: of synchronized_standby_slots, %s; logical decoding waits for these standbys, so pgcdc stalls until they stream again",
			strings.Join(append(prefixAll("missing ", missing), prefixAll("not in use ", idle)...), ", "))
		return
	}
	r.add(OK, "failover", "", "failover slot synchronized to the standbys of synchronized_standby_slots (%s)", setting)
}

func prefixAll(p string, xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = p + x
	}
	return out
}

// checkRecord compares the slot with pgcdc's record of the last position it confirmed.
func checkRecord(ctx context.Context, conn *pgx.Conn, cfg config.Config, r *Report) {
	store, err := slotrecord.Lookup(ctx, conn, cfg.Snapshot.ProgressSchema)
	if errors.Is(err, slotrecord.ErrNoTable) {
		return // created at pgcdc's first start
	}
	if err != nil {
		r.add(Warn, "slot", "", "%v", err)
		return
	}
	rec, err := store.Load(ctx, conn, cfg.Postgres.Slot)
	if err != nil {
		r.add(Warn, "slot", "", "%v", err)
		return
	}
	slot, err := pgsource.ReadSlot(ctx, conn, cfg.Postgres.Slot)
	missing := errors.Is(err, pgsource.ErrSlotMissing)
	if err != nil && !missing {
		return // checkSlot reports it
	}
	mode := cfg.Snapshot.Mode
	_, err = slotrecord.Check(!missing, slotrecord.Slot{Name: cfg.Postgres.Slot, ConfirmedFlush: slot.ConfirmedFlush, Failover: slot.Failover}, rec, store.Table(),
		slotrecord.ModesFor(mode))
	if err != nil {
		r.add(Fail, "slot", fmt.Sprintf("set snapshot.mode: when_needed, or delete the slot's row from %s", store.Table()), "%v", err)
	}
}
