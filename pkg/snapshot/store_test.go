package snapshot_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/internal/testenv"
	"github.com/pgcdc/pgcdc/pkg/snapshot"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func exec(t *testing.T, conn *pgx.Conn, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// newRole creates a login role without privileges (cluster-wide, dropped at cleanup with what it
// owns) and returns a connection to dsn's database as that role.
func newRole(t *testing.T, admin *pgx.Conn, dsn string) (string, *pgx.Conn) {
	t.Helper()
	name := testenv.UniqueName(t, "r")
	exec(t, admin, "CREATE ROLE "+name+" LOGIN PASSWORD 'pw'")
	u, _ := url.Parse(dsn)
	u.User = url.UserPassword(name, "pw")
	conn, err := pgx.Connect(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close(context.Background())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = admin.Exec(ctx, "DROP OWNED BY "+name+" CASCADE")
		_, _ = admin.Exec(ctx, "DROP ROLE IF EXISTS "+name)
	})
	return name, conn
}

// runSnapshotRecords goes through a snapshot's whole record keeping for slot, as the connector does.
func runSnapshotRecords(t *testing.T, s *snapshot.Store, slot string) {
	t.Helper()
	ctx := context.Background()
	if err := s.Begin(ctx, slot); err != nil {
		t.Fatalf("Begin %s: %v", slot, err)
	}
	chunks := []*snapshot.Chunk{{Table: "public.t", Seq: 0, Kind: snapshot.KindKey, Upper: []string{"10"}},
		{Table: "public.t", Seq: 1, Ordinal: 1, Kind: snapshot.KindKey, Lower: []string{"10"}, LastInTable: true}}
	if err := s.SavePlan(ctx, slot, chunks, 0x1000); err != nil {
		t.Fatalf("SavePlan %s: %v", slot, err)
	}
	for _, c := range chunks {
		if err := s.MarkDone(ctx, slot, c, 10); err != nil {
			t.Fatalf("MarkDone %s: %v", slot, err)
		}
	}
	if err := s.Finish(ctx, slot, 20); err != nil {
		t.Fatalf("Finish %s: %v", slot, err)
	}
	st, err := s.Load(ctx, slot)
	if err != nil || st.Status != snapshot.StateDone || len(st.Chunks) != 2 || st.StartLSN != 0x1000 || !st.Chunks[1].Done {
		t.Fatalf("Load %s: %+v %v", slot, st, err)
	}
}

// Two least-privilege roles, each running its own slot, share the progress table: the first
// creates it (CREATE on the schema), the second needs nothing but USAGE on the schema, and neither
// sees nor changes the other's rows. A table of an older pgcdc (no per-role rows), a schema without
// USAGE, and rows of a slot that another role wrote: each error says exactly what to run.
func TestStoreSharedByLeastPrivilegeRoles(t *testing.T) {
	dsn := testenv.NewDatabase(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	roleA, a := newRole(t, admin, dsn)
	roleB, b := newRole(t, admin, dsn)
	exec(t, admin, "GRANT CREATE ON SCHEMA public TO "+roleA) // PostgreSQL 15+: nobody else may create in public

	// B may not create the table: the error gives the grant and the DDL.
	if _, err := snapshot.OpenStore(ctx, b, "public"); err == nil || !strings.Contains(err.Error(), `GRANT CREATE ON SCHEMA "public" TO "`+roleB+`"`) ||
		!strings.Contains(err.Error(), "CREATE POLICY pgcdc_own_rows") {
		t.Fatalf("B creating the table: %v", err)
	}
	sa, err := snapshot.OpenStore(ctx, a, "public")
	if err != nil {
		t.Fatalf("A creates the table: %v", err)
	}
	runSnapshotRecords(t, sa, "slot_a")
	sb, err := snapshot.OpenStore(ctx, b, "public")
	if err != nil {
		t.Fatalf("B opens A's table: %v", err)
	}
	if st, err := sb.Load(ctx, "slot_a"); err != nil || st.Status != snapshot.StateNone {
		t.Fatalf("B sees A's slot: %+v %v", st, err)
	}
	runSnapshotRecords(t, sb, "slot_b")
	var owners string
	if err := admin.QueryRow(ctx, `SELECT string_agg(DISTINCT slot_name || '=' || role_name, ',' ORDER BY slot_name || '=' || role_name) FROM pgcdc_snapshot_progress`).Scan(&owners); err != nil {
		t.Fatal(err)
	}
	if owners != "slot_a="+roleA+",slot_b="+roleB {
		t.Errorf("rows by role: %s", owners)
	}
	// B cannot overwrite A's slot: the error names the statements that hand it over or forget it.
	err = sb.Begin(ctx, "slot_a")
	if err == nil || !strings.Contains(err.Error(), "belong to another role") ||
		!strings.Contains(err.Error(), `UPDATE "public"."pgcdc_snapshot_progress" SET role_name = '`+roleB+`' WHERE slot_name = 'slot_a'`) {
		t.Fatalf("B taking A's slot: %v", err)
	}
	exec(t, a, `UPDATE "public"."pgcdc_snapshot_progress" SET role_name = '`+roleB+`' WHERE slot_name = 'slot_a'`)
	if st, err := sb.Load(ctx, "slot_a"); err != nil || st.Status != snapshot.StateDone {
		t.Fatalf("B after the hand-over: %+v %v", st, err)
	}
	if st, err := sa.Load(ctx, "slot_a"); err != nil || st.Status != snapshot.StateDone {
		t.Fatalf("A (the owner) still reads it: %+v %v", st, err) // owners bypass row-level security
	}

	// A progress table of an older pgcdc in another schema: no per-role rows, owned by A.
	exec(t, admin, "CREATE SCHEMA legacy", "GRANT USAGE ON SCHEMA legacy TO "+roleA)
	exec(t, admin, `CREATE TABLE legacy.pgcdc_snapshot_progress (slot_name text NOT NULL, table_name text NOT NULL, chunk int NOT NULL,
		ordinal int NOT NULL DEFAULT 0, table_order int NOT NULL DEFAULT 0, kind text NOT NULL DEFAULT '', lower_bound text[], upper_bound text[],
		last_in_table boolean NOT NULL DEFAULT false, first_in_snapshot boolean NOT NULL DEFAULT false, last_in_snapshot boolean NOT NULL DEFAULT false,
		rows_estimate bigint NOT NULL DEFAULT 0, state text NOT NULL, rows_done bigint, start_lsn pg_lsn, updated_at timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (slot_name, table_name, chunk))`, "ALTER TABLE legacy.pgcdc_snapshot_progress OWNER TO "+roleA)
	if _, err := snapshot.OpenStore(ctx, b, "legacy"); err == nil || !strings.Contains(err.Error(), `GRANT USAGE ON SCHEMA "legacy" TO "`+roleB+`"`) {
		t.Fatalf("B without USAGE on the schema: %v", err)
	}
	exec(t, admin, "GRANT USAGE ON SCHEMA legacy TO "+roleB)
	la, err := snapshot.OpenStore(ctx, a, "legacy")
	if err != nil {
		t.Fatal(err)
	}
	runSnapshotRecords(t, la, "slot_a")
	lb, err := snapshot.OpenStore(ctx, b, "legacy")
	if err != nil {
		t.Fatalf("B opens the legacy table: %v", err)
	}
	grant := `GRANT SELECT, INSERT, UPDATE, DELETE ON "legacy"."pgcdc_snapshot_progress" TO "` + roleB + `"`
	if _, err := lb.Load(ctx, "slot_b"); err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), grant) ||
		!strings.Contains(err.Error(), "older pgcdc (as role "+roleA+")") {
		t.Fatalf("B on the legacy table: %v", err)
	}
	exec(t, a, grant) // what the message says, run by the owner
	runSnapshotRecords(t, lb, "slot_b")
}
