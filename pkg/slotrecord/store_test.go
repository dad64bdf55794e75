package slotrecord

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func walInsert(t *testing.T, conn *pgx.Conn) pglogrepl.LSN {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), `SELECT pg_current_wal_insert_lsn()::text`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	l, _ := pglogrepl.ParseLSN(s)
	return l
}

// The store creates its table, records at least the position asked and never below the WAL insert
// position of the moment (so a slot created later is always ahead), never lowers a record, and the
// guard writes only when a confirmation passes the record.
func TestStoreRecord(t *testing.T) {
	dsn := testenv.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	store, err := Open(ctx, conn, "public")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := store.Load(ctx, conn, "s1"); err != nil || r.Found {
		t.Fatalf("empty store: %+v, %v", r, err)
	}
	before := walInsert(t, conn)
	got, err := store.Record(ctx, conn, "s1", 16)
	if err != nil {
		t.Fatal(err)
	}
	if got < before {
		t.Fatalf("recorded %s, below the WAL insert position %s before the call", got, before)
	}
	r, err := store.Load(ctx, conn, "s1")
	if err != nil || !r.Found || r.Confirmed != got {
		t.Fatalf("load: %+v, %v; want %s", r, err, got)
	}
	// A slot created now starts after the record.
	var slotLSN string
	if err := conn.QueryRow(ctx, `SELECT lsn::text FROM pg_create_logical_replication_slot('slotrecord_probe', 'pgoutput')`).Scan(&slotLSN); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.Background(), `SELECT pg_drop_replication_slot('slotrecord_probe')`) //nolint:errcheck
	created, _ := pglogrepl.ParseLSN(slotLSN)
	if created <= got {
		t.Fatalf("slot created at %s, not after the record %s", created, got)
	}
	// Never lowered; raised past the asked position when asked for more.
	if again, err := store.Record(ctx, conn, "s1", 8); err != nil || again < got {
		t.Fatalf("record of a lower position: %s, %v (was %s)", again, err, got)
	}
	far := got + 1<<40
	if again, err := store.Record(ctx, conn, "s1", far); err != nil || again != far {
		t.Fatalf("record %s: got %s, %v", far, again, err)
	}

	// The guard writes only past the record.
	g := NewGuard(store, "s2", 0)
	if got, err := g.Before(ctx, conn, 100); err != nil || got != 100 {
		t.Fatalf("guard: %s, %v", got, err)
	}
	first := g.Recorded()
	if first < 100 {
		t.Fatalf("guard recorded %s", first)
	}
	var updated time.Time
	if err := conn.QueryRow(ctx, `SELECT updated_at FROM public.pgcdc_slot_position WHERE slot_name = 's2'`).Scan(&updated); err != nil {
		t.Fatal(err)
	}
	if got, err := g.Before(ctx, conn, first); err != nil || got != first || g.Recorded() != first {
		t.Fatalf("guard at its record: %s, %v, %s", got, err, g.Recorded())
	}
	// Just past the record lies the record's own write: confirming it would need another write
	// (and so on forever on an idle server), so the guard holds the slot at the record.
	var now string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	idle, _ := pglogrepl.ParseLSN(now)
	if got, err := g.Before(ctx, conn, idle); err != nil || got != first || g.Recorded() != first {
		t.Fatalf("guard at its own write's end %s: %s, %v, recorded %s", idle, got, err, g.Recorded())
	}
	var updated2 time.Time
	if err := conn.QueryRow(ctx, `SELECT updated_at FROM public.pgcdc_slot_position WHERE slot_name = 's2'`).Scan(&updated2); err != nil || !updated2.Equal(updated) {
		t.Fatalf("a confirmation at the record wrote again (%v, %v)", updated2, err)
	}
	if err := store.Forget(ctx, conn, "s2"); err != nil {
		t.Fatal(err)
	}
	if r, err := store.Load(ctx, conn, "s2"); err != nil || r.Found {
		t.Fatalf("after Forget: %+v, %v", r, err)
	}
}

// A role that may not create the table gets ErrNoTable with the statements for an administrator;
// once they ran, the same role records.
func TestStoreLeastPrivilege(t *testing.T) {
	dsn := testenv.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	role := testenv.UniqueName(t, "r")
	for _, q := range []string{`CREATE ROLE ` + role + ` LOGIN`, `REVOKE CREATE ON SCHEMA public FROM PUBLIC`, `CREATE SCHEMA cdc`} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		srv := testenv.SharedPostgres(t)
		c, err := pgx.Connect(context.Background(), srv.DSN("postgres"))
		if err == nil {
			_, _ = c.Exec(context.Background(), `DROP ROLE IF EXISTS `+role)
			c.Close(context.Background())
		}
	})
	u, _ := url.Parse(dsn)
	u.User = url.User(role)
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = Open(ctx, conn, "cdc")
	if !errors.Is(err, ErrNoTable) || !strings.Contains(err.Error(), `GRANT SELECT, INSERT, UPDATE, DELETE ON "cdc"."pgcdc_slot_position"`) {
		t.Fatalf("Open without privileges: %v", err)
	}
	if _, err := admin.Exec(ctx, DDL("cdc", role)); err != nil {
		t.Fatal(err)
	}
	store, err := Open(ctx, conn, "cdc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Record(ctx, conn, "s", 42); err != nil {
		t.Fatal(err)
	}
}
