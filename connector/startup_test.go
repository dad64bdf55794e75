package connector_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// startupBound is how long a start-up failure may take with the connect timeouts failFastEnv sets
// (a few seconds each): failing fast means well under it, never a hang until someone notices.
const startupBound = 30 * time.Second

// failFastEnv shortens the start-up timeouts so that a failure that waits for one still ends quickly.
func failFastEnv(extra map[string]string) map[string]string {
	m := map[string]string{
		"PGCDC_POSTGRES_CONNECT_TIMEOUT": "3s",
		"PGCDC_KAFKA_CONNECT_TIMEOUT":    "3s",
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// expectStartupFailure starts pgcdc, waits for it to exit, and checks the exit code, the time it
// took and that the output holds every one of want. It returns the output.
func expectStartupFailure(t *testing.T, e *env, overrides map[string]string, wantCode int, want ...string) string {
	t.Helper()
	pgcdcBinary(t) // build outside the measured time
	began := time.Now()
	p := e.start(failFastEnv(overrides))
	code, sig := p.wait(startupBound + 30*time.Second)
	took := time.Since(began)
	out := p.out.String()
	if sig != 0 {
		t.Fatalf("pgcdc died of %v; output:\n%s", sig, tail(out, 4000))
	}
	if code != wantCode {
		t.Fatalf("exit code %d, want %d; output:\n%s", code, wantCode, tail(out, 4000))
	}
	if took > startupBound {
		t.Errorf("start-up failure took %s, want < %s", took.Round(time.Millisecond), startupBound)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output does not contain %q:\n%s", w, tail(out, 4000))
		}
	}
	t.Logf("failed in %s with exit code %d: %s", took.Round(time.Millisecond), code, strings.TrimSpace(tail(out, 600)))
	return out
}

func startDedicatedPostgres(t *testing.T, opts testenv.PostgresOptions) *testenv.Postgres {
	t.Helper()
	testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := testenv.StartPostgres(ctx, opts)
	if err != nil {
		t.Fatalf("start a dedicated PostgreSQL: %v", err)
	}
	// Registered before newEnv's cleanups, so it runs after them (the databases are dropped first).
	t.Cleanup(pg.Close)
	return pg
}

// startDedicatedKafka starts a broker of the test's own, which it may freeze, stop or kill.
func startDedicatedKafka(t *testing.T) *testenv.Kafka {
	t.Helper()
	testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k, err := testenv.StartKafka(ctx, testenv.KafkaOptions{})
	if err != nil {
		t.Fatalf("start a dedicated Kafka: %v", err)
	}
	t.Cleanup(k.Close)
	return k
}

// freezeKafka freezes k (SIGSTOP of its JVM) and returns the thaw (SIGCONT), which the test calls
// when it means to; a broker the test leaves frozen is thawed at its end.
func freezeKafka(t *testing.T, k *testenv.Kafka) (thaw func() error) {
	t.Helper()
	if err := k.Pause(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var err error
	thaw = func() error {
		once.Do(func() { err = k.Resume() })
		return err
	}
	t.Cleanup(func() { _ = thaw() })
	return thaw
}

// unusedAddr is a loopback address nobody listens on.
func unusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Start-up problems end the process quickly with a non-zero exit and a message that names the
// problem and what to change; none of them hangs or retries until some outer timeout.
func TestStartupFailsFastWithClearMessage(t *testing.T) {
	t.Run("wrong_password", func(t *testing.T) {
		t.Parallel()
		pg := startDedicatedPostgres(t, testenv.PostgresOptions{PasswordAuth: true})
		e := newEnv(t, pg, nil)
		const wrong = "Zq7wrongPw93Xk"
		u, err := url.Parse(e.dsn)
		if err != nil {
			t.Fatal(err)
		}

		t.Run("in_dsn", func(t *testing.T) {
			bad := *u
			bad.User = url.UserPassword("postgres", wrong)
			out := expectStartupFailure(t, e, map[string]string{"PGCDC_POSTGRES_DSN": bad.String()}, 1,
				"authentication failed", "password")
			if strings.Contains(out, wrong) {
				t.Errorf("the password %q appears in the output:\n%s", wrong, out)
			}
		})
		t.Run("in_env", func(t *testing.T) {
			bare := *u
			bare.User = url.User("postgres")
			out := expectStartupFailure(t, e, map[string]string{
				"PGCDC_POSTGRES_DSN":      bare.String(),
				"PGCDC_POSTGRES_PASSWORD": wrong,
			}, 1, "authentication failed", "PGCDC_POSTGRES_PASSWORD")
			if strings.Contains(out, wrong) {
				t.Errorf("the password %q appears in the output:\n%s", wrong, out)
			}
		})
	})

	t.Run("wal_level_replica", func(t *testing.T) {
		t.Parallel()
		pg := startDedicatedPostgres(t, testenv.PostgresOptions{Settings: map[string]string{"wal_level": "replica"}})
		e := newEnv(t, pg, nil)
		e.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
		expectStartupFailure(t, e, nil, 1, "wal_level", `\"replica\"`, "wal_level = logical", "restart PostgreSQL")
	})

	t.Run("unreachable_broker", func(t *testing.T) {
		t.Parallel()
		addr := unusedAddr(t)
		e := newEnv(t, nil, []string{addr})
		e.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
		expectStartupFailure(t, e, nil, 1, addr, "kafka", "start-up timeout")
	})

	t.Run("invalid_config", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil, nil)
		out := expectStartupFailure(t, e, map[string]string{"PGCDC_KAFKA_ACKS": "maybe"}, 2, "kafka.acks", "maybe")
		if !strings.Contains(out, "invalid configuration") {
			t.Errorf("output does not say the configuration is invalid:\n%s", out)
		}
	})
}

// A table without a replica identity is never published silently, at start-up and while running
// alike: it is left out with a warning naming the table and the fix, and counted; fixed, it joins
// and its updates and deletes flow with full before-images. While running, new tables with a key
// are added and captured, new tables without one are left out of the publication (so the
// application's UPDATE keeps working). An include entry naming a table that does not exist yet is a
// warning, and the table is captured once created.
func TestReplicaIdentityAtStartupAndRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE keyed (id int PRIMARY KEY, v text)`)
	e.exec(`CREATE TABLE nokey (a int, b text)`)
	e.exec(`INSERT INTO nokey VALUES (1, 'x')`)

	p := e.start(map[string]string{"PGCDC_SNAPSHOT_MODE": "no_data", // changes only: the row above is not snapshotted
		"PGCDC_TABLES_INCLUDE": "public.keyed,public.nokey,public.later*,public.notyet"})
	p.waitStreaming()
	p.waitLog(`ALTER TABLE \"public\".\"nokey\" REPLICA IDENTITY FULL`, 10*time.Second)
	p.waitLog(`"include":"public.notyet"`, 10*time.Second)
	if out := p.out.String(); strings.Contains(out, `"table":"public.keyed","message":"not captured`) {
		t.Errorf("the keyed table is blamed:\n%s", out)
	}
	if n := e.publishedCount("nokey"); n != 0 {
		t.Fatalf("nokey is in the publication (%d rows in pg_publication_tables)", n)
	}
	e.exec(`UPDATE nokey SET b = 'x' WHERE a = 1`) // the application's UPDATE works

	e.exec(`ALTER TABLE nokey REPLICA IDENTITY FULL`)
	e.waitPublished("nokey", 20*time.Second)
	// The refresh that published it creates its topic just after (joinTables).
	p.waitLog(`"topic":"`+e.topic("nokey")+`"`, 20*time.Second)
	// No incremental snapshot of a table without a key: the reason and the way out are logged.
	p.waitLog(`"message":"newly captured tables without a primary key`, 20*time.Second)
	e.exec(`UPDATE nokey SET b = 'y' WHERE a = 1`)
	e.exec(`DELETE FROM nokey WHERE a = 1`)
	var evs []change
	for _, c := range e.read("nokey", 2, 30*time.Second) {
		if !c.Tombstone {
			evs = append(evs, c)
		}
	}
	if len(evs) < 2 {
		t.Fatalf("nokey: %d change events, want update and delete: %+v", len(evs), evs)
	}
	up, del := evs[0], evs[1]
	if up.Op != "u" || up.Before["a"] != float64(1) || up.Before["b"] != "x" || up.After["b"] != "y" {
		t.Errorf("nokey update: op %s before %v after %v (want the full old row as before)", up.Op, up.Before, up.After)
	}
	if del.Op != "d" || del.Before["a"] != float64(1) || del.Before["b"] != "y" || del.After != nil {
		t.Errorf("nokey delete: op %s before %v after %v (want the full old row as before)", del.Op, del.Before, del.After)
	}

	// Created while running, with a primary key: added at the next refresh, then captured.
	e.exec(`CREATE TABLE later_pk (id int PRIMARY KEY, v text)`)
	e.waitPublished("later_pk", 20*time.Second)
	p.waitLog(`"table":"public.later_pk"`, 10*time.Second)
	p.waitLog(`"topic":"`+e.topic("later_pk")+`"`, 20*time.Second)
	e.exec(`INSERT INTO later_pk VALUES (7, 'seven')`)
	got := e.read("later_pk", 1, 30*time.Second)
	if got[0].Op != "c" || got[0].After["id"] != float64(7) || got[0].After["v"] != "seven" {
		t.Errorf("later_pk insert: %+v", got[0])
	}

	// Created while running, without a replica identity: left out, with the reason and fix logged,
	// and the application's own UPDATE and DELETE keep working.
	e.exec(`CREATE TABLE later_nokey (a int, b text)`)
	e.exec(`INSERT INTO later_nokey VALUES (1, 'x')`)
	p.waitLog(`ALTER TABLE \"public\".\"later_nokey\" REPLICA IDENTITY FULL`, 20*time.Second)
	// A later refresh has looked at it again (it published the table created after it) and still
	// left it out.
	e.exec(`CREATE TABLE notyet (id int PRIMARY KEY)`)
	e.waitPublished("notyet", 20*time.Second)
	if n := e.publishedCount("later_nokey"); n != 0 {
		t.Fatalf("later_nokey was added to the publication (%d rows in pg_publication_tables)", n)
	}
	e.exec(`UPDATE later_nokey SET b = 'y' WHERE a = 1`)
	e.exec(`DELETE FROM later_nokey WHERE a = 1`)
	e.exec(`INSERT INTO notyet VALUES (1)`)
	if got := e.read("notyet", 1, 30*time.Second); got[0].Op != "c" {
		t.Errorf("notyet insert: %+v", got[0])
	}

	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}

// publishedCount is the number of rows pg_publication_tables has for public.<table> in e's publication.
func (e *env) publishedCount(table string) int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow(context.Background(),
		`SELECT count(*) FROM pg_publication_tables WHERE pubname = $1 AND schemaname = 'public' AND tablename = $2`,
		e.pub, table).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) waitPublished(table string, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for e.publishedCount(table) == 0 {
		if time.Now().After(deadline) {
			e.t.Fatalf("public.%s not in publication %s after %s", table, e.pub, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// With postgres.create_publication=false pgcdc never touches the publication: a missing one is an
// error naming it and how to create it; an existing one that lacks a matching table is used as it
// is, with a warning naming the table that is not captured; once an administrator adds the table,
// it is captured and the rows it held are snapshotted (incrementally).
func TestUnmanagedPublication(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE inpub (id int PRIMARY KEY, v text)`)
	e.exec(`CREATE TABLE notinpub (id int PRIMARY KEY, v text)`)
	unmanaged := map[string]string{"PGCDC_POSTGRES_CREATE_PUBLICATION": "false"}

	expectStartupFailure(t, e, unmanaged, 1, e.pub, "does not exist", "CREATE PUBLICATION", "create_publication")
	var exists bool
	if err := e.db.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, e.pub).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatal("pgcdc created the publication although postgres.create_publication is false")
	}

	e.exec(`CREATE PUBLICATION ` + e.pub + ` FOR TABLE inpub`)
	p := e.start(unmanaged)
	p.waitStreaming()
	p.waitLog(`"table":"public.notinpub"`, 5*time.Second)
	out := p.out.String()
	var warned bool
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `"table":"public.notinpub"`) && strings.Contains(line, `"level":"warn"`) &&
			strings.Contains(line, "not in the publication") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning naming public.notinpub:\n%s", tail(out, 4000))
	}
	e.exec(`INSERT INTO inpub VALUES (1, 'one')`)
	if got := e.read("inpub", 1, 30*time.Second); got[0].Op != "c" || got[0].After["v"] != "one" {
		t.Errorf("inpub insert: %+v", got[0])
	}
	if n := e.publishedCount("notinpub"); n != 0 {
		t.Errorf("pgcdc added notinpub to a publication it does not manage")
	}

	// An administrator adds the table later: the next refresh captures it and publishes the rows it
	// held (an incremental snapshot: PostgreSQL never published their changes), then its changes.
	e.exec(`INSERT INTO notinpub VALUES (1, 'before the join')`)
	e.exec(`ALTER PUBLICATION ` + e.pub + ` ADD TABLE notinpub`)
	p.waitLog("tables joined the capture: snapshotting them incrementally", 30*time.Second)
	e.exec(`INSERT INTO notinpub VALUES (2, 'after the join')`)
	ops := map[float64]string{}
	// r for 1 and c for 2, in either order; the snapshot may read 2 as well (an r after its c).
	for _, c := range e.read("notinpub", 2, 60*time.Second) {
		ops[c.After["id"].(float64)] += c.Op
	}
	if ops[1] != "r" || !strings.HasPrefix(ops[2], "c") {
		t.Errorf("notinpub after the join: ops by id %v, want 1: r (the backfill) and 2: c first (streamed)", ops)
	}

	// The administrator drops the table, creates it again, writes a row and adds it back, in one
	// transaction: the publication holds a table of that name before and after, but it is a new
	// table (a new OID), whose row written before the ADD was never published. The next refresh
	// takes it as joining, and its snapshot publishes the row.
	joins := strings.Count(p.out.String(), "tables joined the capture: snapshotting them incrementally")
	e.exec(`BEGIN; DROP TABLE notinpub; CREATE TABLE notinpub (id int PRIMARY KEY, v text);
		INSERT INTO notinpub VALUES (10, 'recreated, before the re-add');
		ALTER PUBLICATION ` + e.pub + ` ADD TABLE notinpub; COMMIT`)
	for deadline := time.Now().Add(60 * time.Second); strings.Count(p.out.String(), "tables joined the capture: snapshotting them incrementally") == joins; {
		if time.Now().After(deadline) {
			t.Fatalf("the table created again and added back by the administrator did not join within 60 s:\n%s", tail(p.out.String(), 4000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.exec(`INSERT INTO notinpub VALUES (11, 'after the re-add')`)
	for deadline := time.Now().Add(60 * time.Second); ; {
		msgs, _ := testenv.ReadTopic(context.Background(), e.brokers, e.topic("notinpub"), 1<<20, 3*time.Second)
		ops = map[float64]string{}
		for _, c := range decodeChanges(t, msgs) {
			if c.After != nil {
				ops[c.After["id"].(float64)] += c.Op
			}
		}
		if strings.Contains(ops[10], "r") && strings.HasPrefix(ops[11], "c") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("notinpub created again: ops by id %v, want 10: r (its backfill) and 11: c first (streamed)", ops)
		}
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}

// SIGTERM stops a streaming connector cleanly: exit code 0 and "stopped cleanly" in the log, with
// everything it sent confirmed to the slot.
func TestSIGTERMStopsCleanly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	p := e.start(nil)
	p.waitStreaming()
	e.exec(`INSERT INTO t VALUES (1)`)
	ins := e.read("t", 1, 30*time.Second)[0]

	began := time.Now()
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if took := time.Since(began); took > 15*time.Second {
		t.Errorf("SIGTERM took %s to stop an idle connector", took)
	}
	out := p.out.String()
	if !strings.Contains(out, `"message":"stopped cleanly"`) {
		t.Errorf("no \"stopped cleanly\" in the log:\n%s", tail(out, 4000))
	}
	if strings.Contains(out, `"level":"error"`) {
		t.Errorf("errors logged on a clean stop:\n%s", tail(out, 4000))
	}
	// The insert was acknowledged by Kafka, so a clean stop has confirmed past it.
	if cf := e.confirmedFlush(); cf <= uint64(ins.Source.LSN) {
		t.Errorf("confirmed_flush_lsn %s after a clean stop, want past the insert (lsn %s)", fmtLSN(cf), fmtLSN(uint64(ins.Source.LSN)))
	}
}

// A failed start leaves nothing behind: what can be checked (Kafka answering, the REPLICATION
// attribute) is checked before anything is created, and a failure after creating something (no
// replication slot left to create the slot) removes what this start created: topics and publication.
func TestFailedStartLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	pg := startDedicatedPostgres(t, testenv.PostgresOptions{Settings: map[string]string{"max_replication_slots": "1"}})
	e := newEnv(t, pg, nil)
	e.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	pubExists := func() bool {
		var n int
		if err := e.db.QueryRow(context.Background(), `SELECT count(*) FROM pg_publication WHERE pubname = $1`, e.pub).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	topicExists := func() bool { return testenv.TopicRecords(context.Background(), e.brokers, e.topic("t")) >= 0 }

	// Kafka unreachable: stopped before the publication is created.
	expectStartupFailure(t, e, map[string]string{"PGCDC_KAFKA_BROKERS": unusedAddr(t)}, 1, "kafka")
	if pubExists() {
		t.Fatal("the publication was created although Kafka was unreachable")
	}

	// A role without REPLICATION: stopped before the publication or any topic is created.
	e.exec(`CREATE ROLE norepl LOGIN`)
	e.exec(`GRANT CREATE ON DATABASE ` + dbName(t, e.dsn) + ` TO norepl`)
	e.exec(`ALTER TABLE t OWNER TO norepl`)
	u, err := url.Parse(e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User("norepl")
	expectStartupFailure(t, e, map[string]string{"PGCDC_POSTGRES_DSN": u.String()}, 1, "REPLICATION", "ALTER ROLE")
	if pubExists() || topicExists() {
		t.Fatalf("a start without REPLICATION left a publication (%v) or topic (%v)", pubExists(), topicExists())
	}

	// The only replication slot is taken: the publication and the topic were created, then removed.
	e.exec(`SELECT pg_create_logical_replication_slot('taken', 'pgoutput')`)
	out := expectStartupFailure(t, e, nil, 1, "replication slot")
	for deadline := time.Now().Add(15 * time.Second); topicExists() && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond) // a deleted topic leaves the metadata shortly after
	}
	if pubExists() || topicExists() {
		t.Fatalf("the failed start left its publication (%v) or topic (%v) behind:\n%s", pubExists(), topicExists(), tail(out, 3000))
	}
	if !strings.Contains(out, "removed what it had created") {
		t.Errorf("the log does not say what was removed:\n%s", tail(out, 3000))
	}
	e.exec(`SELECT pg_drop_replication_slot('taken')`)
}

func dbName(t *testing.T, dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// postgres.connect_timeout bounds the PostgreSQL steps of the start, not the set-up of the topics
// between them: with many new tables the topics take longer than the timeout, and the start must
// still succeed (it used to fail with "context deadline exceeded" and undo itself, each time).
func TestManyNewTopicsOutlastPostgresConnectTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil)
	const tables = 64
	var b strings.Builder
	for i := range tables {
		fmt.Fprintf(&b, "CREATE TABLE many_%02d (id int PRIMARY KEY);", i)
	}
	e.exec(b.String())
	started := time.Now()
	p := e.start(map[string]string{"PGCDC_POSTGRES_CONNECT_TIMEOUT": "1s"})
	p.waitStreaming()
	took := time.Since(started)
	// The fault must have happened: the start outlasted the PostgreSQL timeout (64 topics created).
	if took < 1500*time.Millisecond {
		t.Fatalf("the start took %s, not longer than postgres.connect_timeout (1s): the test proves nothing; add tables", took)
	}
	e.exec(`INSERT INTO many_63 VALUES (1)`)
	if got := e.read("many_63", 1, 30*time.Second); got[0].Op != "c" {
		t.Errorf("many_63 insert: %+v", got[0])
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}
