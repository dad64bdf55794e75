package slotrecord

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pgcdc/pgcdc/config"
)

func TestCheck(t *testing.T) {
	noData, initial, whenNeeded := Modes{}, Modes{SnapshotsNewSlot: true}, Modes{SnapshotsNewSlot: true, ReplacesAheadSlot: true}
	rec := Record{Found: true, Confirmed: 1000, UpdatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	cases := []struct {
		name      string
		exists    bool
		confirmed pglogrepl.LSN
		failover  bool
		rec       Record
		modes     Modes
		want      Plan
		wantErr   any // nil, *AheadError or *MissingError
	}{
		{"no record, slot missing (first start)", false, 0, false, Record{}, noData, Plan{}, nil},
		{"no record, slot exists (record table new)", true, 5000, false, Record{}, noData, Plan{}, nil},
		{"slot at the record", true, 1000, false, rec, noData, Plan{}, nil},
		{"slot behind the record (PostgreSQL crash)", true, 400, false, rec, noData, Plan{}, nil},
		{"slot ahead of the record (recreated)", true, 1001, false, rec, noData, Plan{}, &AheadError{}},
		{"slot ahead, initial: refused", true, 1001, false, rec, initial, Plan{}, &AheadError{}},
		{"slot ahead, when_needed: replace it", true, 9000, false, rec, whenNeeded, Plan{DropSlot: true}, nil},
		{"failover slot ahead (synchronized copy)", true, 9000, true, rec, noData, Plan{}, nil},
		{"slot missing after it was confirmed, no_data", false, 0, false, rec, noData, Plan{}, &MissingError{}},
		{"slot missing, initial: start-up snapshots or refuses", false, 0, false, rec, initial, Plan{}, nil},
		{"slot missing, when_needed: create it anew", false, 0, false, rec, whenNeeded, Plan{}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Slot{Name: "s1", ConfirmedFlush: c.confirmed, Failover: c.failover}
			got, err := Check(c.exists, s, c.rec, `"public"."pgcdc_slot_position"`, c.modes)
			if got != c.want {
				t.Errorf("plan %+v, want %+v", got, c.want)
			}
			switch c.wantErr.(type) {
			case nil:
				if err != nil {
					t.Errorf("unexpected error: %v", err)
				}
			case *AheadError:
				var ae *AheadError
				if !errors.As(err, &ae) {
					t.Fatalf("error %v, want an AheadError", err)
				}
				for _, w := range []string{`slot "s1"`, "0/3E9", "ahead of", "0/3E8", "snapshot.mode: when_needed", `"public"."pgcdc_slot_position"`, "2025-01-02 03:04:05Z", "failover_slot"} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("message lacks %q:\n%s", w, err)
					}
				}
			case *MissingError:
				var me *MissingError
				if !errors.As(err, &me) {
					t.Fatalf("error %v, want a MissingError", err)
				}
				for _, w := range []string{`slot "s1" does not exist`, "0/3E8", "snapshot.mode: when_needed", "delete the slot's row"} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("message lacks %q:\n%s", w, err)
					}
				}
			}
		})
	}
}

func TestDDL(t *testing.T) {
	got := DDL("my schema", "cdc")
	for _, w := range []string{`CREATE TABLE IF NOT EXISTS "my schema"."pgcdc_slot_position"`, "slot_name     text        PRIMARY KEY",
		`GRANT SELECT, INSERT, UPDATE, DELETE ON "my schema"."pgcdc_slot_position" TO "cdc"`} {
		if !strings.Contains(got, w) {
			t.Errorf("DDL lacks %q:\n%s", w, got)
		}
	}
	if strings.Contains(DDL("s", ""), "GRANT") {
		t.Error("DDL without a role grants")
	}
}

// A nil guard (no record table) lets every confirmation through without touching a connection.
func TestNilGuard(t *testing.T) {
	var g *Guard
	if got, err := g.Before(t.Context(), nil, 5); err != nil || got != 5 || g.Recorded() != 0 {
		t.Fatalf("nil guard: %s, %v, recorded %s", got, err, g.Recorded())
	}
}

// ModesFor spells the snapshot modes as config does.
func TestModesFor(t *testing.T) {
	for mode, want := range map[string]Modes{
		config.SnapshotInitial:     {SnapshotsNewSlot: true},
		config.SnapshotInitialOnly: {SnapshotsNewSlot: true},
		config.SnapshotNoData:      {},
		config.SnapshotWhenNeeded:  {SnapshotsNewSlot: true, ReplacesAheadSlot: true},
		config.SnapshotAlways:      {SnapshotsNewSlot: true, ReplacesAheadSlot: true},
	} {
		if got := ModesFor(mode); got != want {
			t.Errorf("%s: %+v, want %+v", mode, got, want)
		}
	}
}
