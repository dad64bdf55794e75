package connector

import (
	"context"
	"errors"

	"github.com/pgcdc/pgcdc/pkg/pgsource"
	"github.com/pgcdc/pgcdc/pkg/slotrecord"
)

// Slot safety across failovers:
//   - slotSafety runs at start-up before the slot is ensured: it refuses postgres.failover_slot
//     before PostgreSQL 17 and checks the slot against pgcdc's record of the last position it
//     confirmed (pkg/slotrecord); the function it returns runs once the slot is ensured and sets up
//     c.slotGuard;
//   - the guard (c.slotGuard.Before) runs before every status update that confirms a newer position:
//     the stream calls it (StreamOptions.BeforeConfirm).

// slotSafety checks the slot against its record and returns what to run after ensureSlot.
func (c *Connector) slotSafety(ctx context.Context) (after func(context.Context) error, err error) {
	pg := c.cfg.Postgres
	if err := pgsource.CheckFailover(c.info, pg.FailoverSlot); err != nil {
		return nil, err
	}
	nothing := func(context.Context) error { return nil }
	store, err := slotrecord.Open(ctx, c.sql, c.cfg.Snapshot.ProgressSchema)
	if errors.Is(err, slotrecord.ErrNoTable) {
		c.log.Warn().Err(err).Msg("running without the check of the slot against pgcdc's recorded position: a slot created again after a failover would go unnoticed (docs/failover.md)")
		return nothing, nil
	}
	if err != nil {
		return nil, err
	}
	rec, err := store.Load(ctx, c.sql, pg.Slot)
	if err != nil {
		return nil, err
	}
	slot, err := pgsource.ReadSlot(ctx, c.sql, pg.Slot)
	missing := errors.Is(err, pgsource.ErrSlotMissing)
	if err != nil && !missing {
		return nil, err
	}
	mode := c.cfg.Snapshot.Mode
	plan, err := slotrecord.Check(!missing, slotrecord.Slot{Name: pg.Slot, ConfirmedFlush: slot.ConfirmedFlush, Failover: slot.Failover},
		rec, store.Table(), slotrecord.ModesFor(mode))
	if err != nil {
		return nil, err
	}
	if plan.DropSlot {
		c.log.Warn().Str("slot", pg.Slot).Str("slot_lsn", slot.ConfirmedFlush.String()).Str("recorded_lsn", rec.Confirmed.String()).Str("snapshot_mode", mode).
			Msg("the slot is ahead of the position pgcdc last confirmed on it (it was created again, e.g. after a failover): dropping it, creating it again and snapshotting the tables")
		if _, err := c.sql.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, pg.Slot); err != nil {
			return nil, err
		}
	}
	return func(ctx context.Context) error {
		recorded, err := store.Record(ctx, c.sql, pg.Slot, c.slot.ConfirmedFlush)
		if err != nil {
			return err
		}
		c.slotGuard = slotrecord.NewGuard(store, pg.Slot, recorded)
		return nil
	}, nil
}
