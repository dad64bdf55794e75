package slotrecord

import (
	"context"
	"fmt"

	"github.com/jackc/pglogrepl"
)

// Slot is what Verify needs to know about a replication slot.
type Slot struct {
	Name           string
	ConfirmedFlush pglogrepl.LSN
	Failover       bool // a failover slot (PostgreSQL 17+), synchronized to standbys
}

// AheadError says a slot is ahead of the record: it was created again after pgcdc last confirmed
// it, and the changes in between were never delivered.
type AheadError struct {
	Slot     Slot
	Recorded Record
	Table    string // the record table, quoted
}

func (e *AheadError) Error() string {
	return fmt.Sprintf("postgres: replication slot %q is at %s, ahead of the last position pgcdc confirmed on it (%s, recorded in %s at %s): "+
		"the slot was created again since (typically after a failover to a standby that did not have it: PostgreSQL before 17, or postgres.failover_slot off), "+
		"and the changes between the two positions were never delivered. pgcdc does not continue silently. "+
		"Recover: set snapshot.mode: when_needed and start pgcdc: it drops this slot, creates it again and snapshots the tables, so every row's current state is delivered; "+
		"or, to accept the gap, delete the slot's row from %s. To survive failovers without this, use PostgreSQL 17+ with postgres.failover_slot: true (docs/failover.md)",
		e.Slot.Name, e.Slot.ConfirmedFlush, e.Recorded.Confirmed, e.Table, e.Recorded.UpdatedAt.UTC().Format("2006-01-02 15:04:05Z"), e.Table)
}

// MissingError says a slot pgcdc had confirmed no longer exists: creating it again would skip the
// changes made since.
type MissingError struct {
	Slot     string
	Recorded Record
	Table    string
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("postgres: replication slot %q does not exist, but pgcdc confirmed it up to %s (recorded in %s at %s): "+
		"it was lost (e.g. a failover to a standby that did not have it) or dropped, and a new slot would silently skip the changes made since. "+
		"Recover: set snapshot.mode: when_needed and start pgcdc: it creates the slot and snapshots the tables; "+
		"or, to start from now and accept the gap, delete the slot's row from %s (pgcdc slot drop does that for a slot it drops)",
		e.Slot, e.Recorded.Confirmed, e.Table, e.Recorded.UpdatedAt.UTC().Format("2006-01-02 15:04:05Z"), e.Table)
}

// Verify checks an existing slot against its record: nil when there is no record, when the slot is
// at or behind it (behind is normal after a PostgreSQL crash), or when the slot is a failover slot;
// an *AheadError otherwise.
func Verify(s Slot, r Record, table string) error {
	if !r.Found || s.Failover || s.ConfirmedFlush <= r.Confirmed {
		return nil
	}
	return &AheadError{Slot: s, Recorded: r, Table: table}
}

// Guard keeps the record ahead of every position pgcdc confirms on one slot. Its methods are not
// safe for concurrent use: call them from the goroutine that sends the status updates.
type Guard struct {
	store    *Store
	slot     string
	recorded pglogrepl.LSN
	// ownEnd is the server's WAL insert position right after the guard's last write committed:
	// the WAL between the record and it holds that write (and whatever others wrote meanwhile).
	ownEnd pglogrepl.LSN
}

// NewGuard returns a guard for slot whose record is at recorded (0: none yet).
func NewGuard(store *Store, slot string, recorded pglogrepl.LSN) *Guard {
	return &Guard{store: store, slot: slot, recorded: recorded}
}

// Before must be called before flush is sent as the slot's flush position; it returns the position
// that may be sent. When flush is beyond the record it records it durably first and returns flush.
// The record's own write lies beyond the recorded position, so an idle server's next position is
// always just past it: confirming that would need another write, whose WAL would again lie beyond,
// one write per status update forever. So a flush no further than the end of the guard's last write
// is not recorded: Before returns the record instead, and the slot stays that write behind until
// other WAL moves it on. (A server shutting down waits for its walsenders' clients to confirm all
// they were sent: the stream ends its session when the server keeps asking; pgsource.)
func (g *Guard) Before(ctx context.Context, conn Querier, flush pglogrepl.LSN) (pglogrepl.LSN, error) {
	if g == nil || flush <= g.recorded {
		return flush, nil
	}
	if flush <= g.ownEnd {
		return g.recorded, nil
	}
	rec, end, err := g.store.record(ctx, conn, g.slot, flush)
	if err != nil {
		return 0, err
	}
	g.recorded, g.ownEnd = rec, end
	return flush, nil
}

// Recorded is the position the record holds as far as the guard knows (0 for a nil guard).
func (g *Guard) Recorded() pglogrepl.LSN {
	if g == nil {
		return 0
	}
	return g.recorded
}

// Plan is what start-up must do before it ensures the slot.
type Plan struct {
	// DropSlot: drop the existing slot, which was created again behind pgcdc's back; start-up then
	// creates a new one with a snapshot.
	DropSlot bool
}

// Modes say what the snapshot mode does with a slot that is missing or replaced.
type Modes struct {
	// SnapshotsNewSlot: a missing slot is created with a snapshot of the tables, or refused (every
	// mode but no_data; snapshot.mode initial refuses a new slot once its snapshot is done).
	SnapshotsNewSlot bool
	// ReplacesAheadSlot: a slot ahead of the record is dropped and created again with a snapshot
	// (when_needed, always).
	ReplacesAheadSlot bool
}

// Check decides what start-up does with the slot (exists says whether it does) and its record: a
// missing slot that pgcdc had confirmed is a *MissingError unless start-up snapshots a new slot; a
// slot ahead of the record is an *AheadError unless the mode replaces it. The record needs no reset
// when a new slot is created: it is raised to the new slot's position, which is above it.
func Check(exists bool, s Slot, r Record, table string, m Modes) (Plan, error) {
	if !r.Found {
		return Plan{}, nil
	}
	if !exists {
		if m.SnapshotsNewSlot {
			return Plan{}, nil
		}
		return Plan{}, &MissingError{Slot: s.Name, Recorded: r, Table: table}
	}
	err := Verify(s, r, table)
	if err == nil {
		return Plan{}, nil
	}
	if m.ReplacesAheadSlot {
		return Plan{DropSlot: true}, nil
	}
	return Plan{}, err
}

// ModesFor returns the Modes of a snapshot.mode setting (initial, initial_only, no_data, always,
// when_needed).
func ModesFor(snapshotMode string) Modes {
	return Modes{
		SnapshotsNewSlot:  snapshotMode != "no_data",
		ReplacesAheadSlot: snapshotMode == "when_needed" || snapshotMode == "always",
	}
}
