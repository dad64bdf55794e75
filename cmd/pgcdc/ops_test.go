package main

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// pgcdc runs the command in-process with the given PGCDC_* variables and returns its exit code and
// output.
func pgcdc(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func sqlExec(t *testing.T, dsn string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// withUser returns dsn with another user and password.
func withUser(t *testing.T, dsn, user, password string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

// newRole creates a login role of its own on the server of adminDSN (cluster-wide), dropped at
// cleanup. Call it before creating the database it is granted on: cleanups run in reverse, so the
// database goes first.
func newRole(t *testing.T, adminDSN, attrs string) (string, string) {
	t.Helper()
	name := testenv.UniqueName(t, "r")
	const password = "Pw-9f8e7d"
	sqlExec(t, adminDSN, "CREATE ROLE "+name+" LOGIN PASSWORD '"+password+"' "+attrs)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, adminDSN); err == nil {
			_, _ = conn.Exec(ctx, "DROP ROLE IF EXISTS "+name)
			conn.Close(ctx)
		}
	})
	return name, password
}

// createTopicWithConfig creates a one-partition topic with one topic setting.
func createTopicWithConfig(t *testing.T, brokers []string, topic, key, value string) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: key, ConfigValue: value}},
	}}})
	if err == nil {
		err = res.Errors[topic]
	}
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		t.Fatal(err)
	}
}

// findings returns the report lines of a severity (with the fix line that follows each).
func findings(out, severity string) []string {
	var got []string
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, severity+" ") {
			if i+1 < len(lines) && strings.Contains(lines[i+1], "fix: ") {
				l += "\n" + lines[i+1]
			}
			got = append(got, l)
		}
	}
	return got
}

func requireFinding(t *testing.T, out, severity string, parts ...string) {
	t.Helper()
	for _, f := range findings(out, severity) {
		all := true
		for _, p := range parts {
			if !strings.Contains(f, p) {
				all = false
			}
		}
		if all {
			return
		}
	}
	t.Errorf("no %s finding with %q in:\n%s", severity, parts, out)
}

// A deliberately broken setup: wal_level=replica, a table without replica identity, a role without
// REPLICATION (nor CREATE on the database). pgcdc check names each problem with its fix and exits 1.
func TestCheckMisconfigured(t *testing.T) {
	testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	pg, err := testenv.StartPostgres(ctx, testenv.PostgresOptions{Settings: map[string]string{"wal_level": "replica"}})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	admin := pg.DSN("postgres")
	role, pw := newRole(t, admin, "") // no REPLICATION
	dsn := pg.NewDatabase(t)
	sqlExec(t, dsn,
		`CREATE TABLE public.keyed (id int PRIMARY KEY)`,
		`CREATE TABLE public.nokey (a int, b text)`,
		"ALTER TABLE public.keyed OWNER TO "+role,
		"ALTER TABLE public.nokey OWNER TO "+role)
	env := map[string]string{
		"PGCDC_POSTGRES_DSN":       withUser(t, dsn, role, pw),
		"PGCDC_KAFKA_BROKERS":      strings.Join(testenv.SharedKafka(t), ","),
		"PGCDC_KAFKA_TOPIC_PREFIX": testenv.UniqueName(t, "t"),
		"PGCDC_POSTGRES_SLOT":      testenv.UniqueName(t, "slot"),
	}
	started := time.Now()
	code, out, errOut := pgcdc(t, env, "check")
	t.Logf("pgcdc check took %s:\n%s", time.Since(started).Round(time.Millisecond), out)
	if code != 1 {
		t.Errorf("exit %d, want 1 (stderr %q)", code, errOut)
	}
	requireFinding(t, out, "FAIL", `wal_level is "replica"`, "fix: ALTER SYSTEM SET wal_level = logical", "restart PostgreSQL")
	requireFinding(t, out, "FAIL", "role "+role+" lacks the REPLICATION attribute", "fix: ALTER ROLE "+`"`+role+`"`+" WITH REPLICATION")
	// A table without a replica identity is left out of the publication (its UPDATE and DELETE
	// would fail once published): a warning, and no topic for it.
	requireFinding(t, out, "WARN", "public.nokey has no replica identity", "fix: ", `REPLICA IDENTITY FULL`)
	if strings.Contains(out, ".public.nokey") {
		t.Errorf("the check plans a topic for public.nokey, which pgcdc leaves out:\n%s", out)
	}
	requireFinding(t, out, "FAIL", "may not create it", "GRANT CREATE ON DATABASE")
	requireFinding(t, out, "OK", "1 captured table with a replica identity: public.keyed")
	if strings.Contains(out, pw) {
		t.Errorf("the password appears in the output")
	}
	if !regexp.MustCompile(`(?m)^\d+ problems, \d+ warnings?: pgcdc cannot run correctly`).MatchString(out) {
		t.Errorf("no summary line:\n%s", out)
	}
}

// A least-privilege setup as docs/operations.md describes it (REPLICATION, SELECT, the publication
// created by an admin) passes: exit 0, with warnings for the single broker (replication factor 1)
// and a topic whose retention would lose history; --strict turns the warnings into exit 1. Then
// status, slot drop's refusal without --confirm, and the drop itself.
func TestCheckHealthyStatusAndSlotDrop(t *testing.T) {
	testenv.Require(t)
	srv := testenv.SharedPostgres(t)
	admin := srv.DSN("postgres")
	role, pw := newRole(t, admin, "REPLICATION")
	dsn := testenv.NewDatabase(t)
	pub := testenv.UniqueName(t, "pub")
	slot := testenv.UniqueName(t, "slot")
	prefix := testenv.UniqueName(t, "t")
	sqlExec(t, dsn,
		`CREATE TABLE public.orders (id int PRIMARY KEY, v text)`,
		`CREATE TABLE public.kept (id int PRIMARY KEY)`,
		"GRANT SELECT ON ALL TABLES IN SCHEMA public TO "+role,
		"CREATE PUBLICATION "+pub+" FOR TABLE public.orders, public.kept")
	brokers := testenv.SharedKafka(t)
	// The topic of "kept" exists already with a 1-day retention.
	kept := prefix + ".public.kept"
	createTopicWithConfig(t, brokers, kept, "retention.ms", "86400000")
	env := map[string]string{
		"PGCDC_POSTGRES_DSN":                withUser(t, dsn, role, pw),
		"PGCDC_POSTGRES_SLOT":               slot,
		"PGCDC_POSTGRES_PUBLICATION":        pub,
		"PGCDC_POSTGRES_CREATE_PUBLICATION": "false",
		"PGCDC_KAFKA_BROKERS":               strings.Join(brokers, ","),
		"PGCDC_KAFKA_TOPIC_PREFIX":          prefix,
	}
	code, out, errOut := pgcdc(t, env, "check")
	t.Logf("pgcdc check:\n%s", out)
	if code != 0 {
		t.Fatalf("healthy setup: exit %d (stderr %q)", code, errOut)
	}
	if f := findings(out, "FAIL"); len(f) != 0 {
		t.Errorf("FAIL findings on a healthy setup: %q", f)
	}
	requireFinding(t, out, "OK", "role "+role+" has REPLICATION")
	requireFinding(t, out, "OK", "publication "+pub+" holds every captured table")
	requireFinding(t, out, "INFO", "replication slot "+slot+" does not exist yet")
	requireFinding(t, out, "INFO", "pgcdc creates at start", prefix+".public.orders")
	requireFinding(t, out, "WARN", "topics pgcdc creates", "replication factor 1", "lost with that broker's disk", "fix: set kafka.replication_factor: 3")
	requireFinding(t, out, "WARN", "topic "+kept+": retention.ms 86400000 (24h0m0s)", "can no longer rebuild a downstream system", "fix: kafka-configs.sh", "retention.ms=-1")
	if code, _, _ := pgcdc(t, env, "check", "--strict"); code != 1 {
		t.Errorf("check --strict with warnings: exit %d, want 1", code)
	}

	// status: no slot yet (exit 1), then a slot (exit 0) with its position.
	code, out, _ = pgcdc(t, env, "status")
	if code != 1 || !strings.Contains(out, "exists           no") {
		t.Errorf("status without slot: exit %d\n%s", code, out)
	}
	sqlExec(t, dsn, "SELECT pg_create_logical_replication_slot('"+slot+"', 'pgoutput')")
	code, out, errOut = pgcdc(t, env, "status")
	if code != 0 {
		t.Fatalf("status: exit %d %s", code, errOut)
	}
	for _, want := range []string{"slot             " + slot, "plugin           pgoutput", "active           no", "wal_status       reserved", "confirmed_flush  ", "lag              ", "safe_wal_size    unbounded"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = pgcdc(t, env, "status", "--json")
	if code != 0 || !strings.Contains(out, `"wal_status":"reserved"`) || !strings.Contains(out, `"slot":"`+slot+`"`) {
		t.Errorf("status --json: exit %d %s", code, out)
	}

	// slot drop refuses without --confirm and leaves the slot; with it, drops it.
	code, _, errOut = pgcdc(t, env, "slot", "drop")
	if code != 2 || !strings.Contains(errOut, "without --confirm") {
		t.Errorf("slot drop without --confirm: exit %d %q", code, errOut)
	}
	if code, _, _ := pgcdc(t, env, "status"); code != 0 {
		t.Fatal("the slot is gone after a refused drop")
	}
	code, out, errOut = pgcdc(t, env, "slot", "drop", "--confirm")
	if code != 0 || !strings.Contains(out, "dropped replication slot "+slot) {
		t.Errorf("slot drop --confirm: exit %d %q %q", code, out, errOut)
	}
	if code, out, _ := pgcdc(t, env, "status"); code != 1 || !strings.Contains(out, "exists           no") {
		t.Errorf("after drop: exit %d\n%s", code, out)
	}
	if code, _, errOut := pgcdc(t, env, "slot", "drop", "--confirm"); code != 1 || !strings.Contains(errOut, "does not exist") {
		t.Errorf("dropping a missing slot: exit %d %q", code, errOut)
	}
}
