package connector_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// replaySchema is the source schema of the replay tests: many types, a table whose body is
// TOASTed, and a keyless table with REPLICA IDENTITY FULL.
const replaySchema = `
CREATE TABLE t_types (id int PRIMARY KEY, name text, amount numeric(12,3), created timestamptz,
	local timestamp, day date, doc jsonb, uid uuid, ok bool, raw bytea, score float8, big bigint);
CREATE TABLE t_toast (id int PRIMARY KEY, small int, body text);
CREATE TABLE t_keyless (tag text, v int);
ALTER TABLE t_keyless REPLICA IDENTITY FULL;`

// typesInsert inserts rows lo..hi into t_types, values of every type (NULLs included).
const typesInsert = `
INSERT INTO t_types SELECT g, 'name ' || g || CASE WHEN g %% 5 = 0 THEN ' é"\' ELSE '' END,
	CASE WHEN g %% 11 = 0 THEN NULL ELSE (g * 1.125 - 300)::numeric(12,3) END,
	'2024-01-01 00:00:00+00'::timestamptz + g * interval '1 hour 1.234567 second',
	CASE WHEN g %% 13 = 0 THEN NULL ELSE '1999-12-31 23:59:59.5'::timestamp - g * interval '1 day' END,
	'2000-02-28'::date + g, jsonb_build_object('g', g, 'arr', jsonb_build_array(g, 'x', g * 0.5)),
	md5(g::text)::uuid, g %% 2 = 0, decode(md5(g::text), 'hex'), g / 7.0, g::bigint * 1000000007
FROM generate_series(%d, %d) g;`

// replayWorkload inserts, updates, deletes and re-keys rows of every table, and truncates t_types
// between two such rounds.
var replayWorkload = fmt.Sprintf(typesInsert, 1, 400) + `
UPDATE t_types SET name = 'upd ' || id, amount = amount * 2, doc = doc || '{"u": true}' WHERE id % 3 = 0;
DELETE FROM t_types WHERE id % 10 = 1;
UPDATE t_types SET id = id + 10000 WHERE id % 7 = 0;
INSERT INTO t_toast SELECT g, g, (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 300) i) FROM generate_series(1, 20) g;
UPDATE t_toast SET small = small + 100 WHERE id % 2 = 0;
DELETE FROM t_toast WHERE id = 5;
UPDATE t_toast SET id = id + 1000 WHERE id IN (3, 4, 7, 8); -- new keys; body unchanged (TOAST placeholder), carried from the old rows
INSERT INTO t_keyless SELECT 'k' || (g % 4), g % 3 FROM generate_series(1, 30) g;
UPDATE t_keyless SET v = v + 10 WHERE tag = 'k1';
DELETE FROM t_keyless WHERE tag = 'k2' AND v = 0;
TRUNCATE t_types;` + fmt.Sprintf(typesInsert, 300, 600) + `
UPDATE t_types SET name = 'after ' || id WHERE id % 4 = 0;
DELETE FROM t_types WHERE id % 9 = 0;
UPDATE t_types SET id = id + 20000 WHERE id % 11 = 0;`

// tableChecksums returns an ordered checksum of every replayed table.
func tableChecksums(t *testing.T, dsn string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for table, order := range map[string]string{"t_types": "id", "t_toast": "id", "t_keyless": "t::text", "t_big": "id", "t_plain": "id"} {
		sum, err := queryRow(dsn, fmt.Sprintf(`SELECT count(*)::text || ' rows ' || coalesce(md5(string_agg(t::text, E'\n' ORDER BY %s)), 'empty') FROM %s t`, order, table))
		if err != nil {
			if strings.Contains(err.Error(), "does not exist") {
				continue
			}
			t.Fatalf("checksum %s: %v", table, err)
		}
		out[table] = sum
	}
	return out
}

// queryRow returns the one text value sql selects ("<null>" for NULL).
func queryRow(dsn, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer db.Close(ctx)
	var s *string
	if err := db.QueryRow(ctx, sql).Scan(&s); err != nil {
		return "", err
	}
	if s == nil {
		return "<null>", nil
	}
	return *s, nil
}

// waitDelivered waits until pgcdc has confirmed (so Kafka holds) everything written so far.
func (e *env) waitDelivered(timeout time.Duration) {
	e.t.Helper()
	want := e.queryLSN(`SELECT pg_current_wal_lsn()::text`)
	deadline := time.Now().Add(timeout)
	for e.confirmedFlush() < want {
		if time.Now().After(deadline) {
			e.t.Fatalf("pgcdc did not confirm %X within %s (confirmed %X)", want, timeout, e.confirmedFlush())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startReplay runs `pgcdc replay` with args.
func (e *env) startReplay(args ...string) *proc {
	e.t.Helper()
	return e.startProcess(os.Environ(), append([]string{"replay"}, args...)...)
}

func (e *env) replayArgs(target string, extra ...string) []string {
	return append([]string{"--brokers", strings.Join(e.brokers, ","), "--topic-prefix", e.prefix,
		"--target", target, "--until-end", "--progress", "log", "--progress-interval", "1s"}, extra...)
}

// TestReplayRebuildsSource streams a mixed workload (inserts, updates, deletes, primary-key
// changes, a truncate between two rounds, an unchanged TOAST column, a keyless table; many types) through pgcdc to Kafka on three
// partitions, replays it into a fresh database and compares every table by an ordered checksum:
// with schemas (the tables created from them) and without (the tables created beforehand).
func TestReplayRebuildsSource(t *testing.T) {
	for _, schemas := range []bool{true, false} {
		t.Run(map[bool]string{true: "schemas", false: "no-schemas"}[schemas], func(t *testing.T) {
			e := newEnv(t, nil, nil)
			e.exec(replaySchema)
			over := map[string]string{"PGCDC_KAFKA_PARTITIONS": "3", "PGCDC_EVENTS_TRUNCATE": "true"}
			if !schemas {
				over["PGCDC_EVENTS_KEY_SCHEMAS"], over["PGCDC_EVENTS_VALUE_SCHEMAS"] = "false", "false"
			}
			p := e.start(over)
			p.waitStreaming()
			e.exec(replayWorkload)
			e.waitDelivered(60 * time.Second)
			if code := p.stop(); code != 0 {
				t.Fatalf("pgcdc exit %d", code)
			}
			source := tableChecksums(t, e.dsn)
			if len(source) != 3 {
				t.Fatalf("source checksums: %v", source)
			}
			t.Logf("source: %v", source)

			target := testenv.NewDatabase(t)
			var extra []string
			if schemas {
				extra = append(extra, "--create-tables")
			} else {
				createTables(t, target, replaySchema)
			}
			start := time.Now()
			r := e.startReplay(e.replayArgs(target, extra...)...)
			if code, _ := r.wait(2 * time.Minute); code != 0 {
				t.Fatalf("replay exit %d:\n%s", code, tail(r.out.String(), 4000))
			}
			t.Logf("replay took %s", time.Since(start).Round(time.Millisecond))
			got := tableChecksums(t, target)
			for table, want := range source {
				if got[table] != want {
					t.Errorf("%s: target %q, source %q", table, got[table], want)
				}
			}
			// the body of t_toast updated without it (placeholder in the topic) kept its value
			if !strings.Contains(tail(r.out.String(), 4000), `"message":"replay finished"`) {
				t.Fatalf("no final log line:\n%s", tail(r.out.String(), 4000))
			}
			// a second replay over the rebuilt target applies nothing and changes nothing
			r = e.startReplay(e.replayArgs(target, extra...)...)
			if code, _ := r.wait(2 * time.Minute); code != 0 {
				t.Fatalf("second replay exit %d", code)
			}
			if !strings.Contains(r.out.String(), `"records":0`) {
				t.Fatalf("second replay applied records:\n%s", tail(r.out.String(), 2000))
			}
			if after := tableChecksums(t, target); fmt.Sprint(after) != fmt.Sprint(got) {
				t.Fatalf("second replay changed the target: %v => %v", got, after)
			}
		})
	}
}

// TestReplayKilledMidwayConverges kills replay with SIGKILL in the middle of a 150,000-event
// replay and shows that the restart converges to the source.
func TestReplayKilledMidwayConverges(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE t_big (id int PRIMARY KEY, v text, n numeric(10,2))`)
	p := e.start(map[string]string{"PGCDC_KAFKA_PARTITIONS": "3"})
	p.waitStreaming()
	e.exec(`INSERT INTO t_big SELECT g, md5(g::text), g / 3.0 FROM generate_series(1, 100000) g`)
	e.exec(`UPDATE t_big SET v = 'u' || v WHERE id % 2 = 0`)
	e.exec(`DELETE FROM t_big WHERE id % 10 = 3`)
	e.waitDelivered(2 * time.Minute)
	if code := p.stop(); code != 0 {
		t.Fatalf("pgcdc exit %d", code)
	}
	const total = 100000 + 50000 + 2*10000 // inserts, updates, deletes with their tombstones
	source := tableChecksums(t, e.dsn)

	target := testenv.NewDatabase(t)
	db, err := pgx.Connect(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	applied := func() int64 {
		var n int64
		err := db.QueryRow(context.Background(), `SELECT coalesce(sum(next_offset), 0)::int8 FROM pgcdc_replay_offsets`).Scan(&n)
		if err != nil && !strings.Contains(err.Error(), "does not exist") {
			t.Fatal(err)
		}
		return n
	}
	args := e.replayArgs(target, "--create-tables", "--batch-size", "500", "--workers", "1")
	r := e.startReplay(args...)
	deadline := time.Now().Add(2 * time.Minute)
	var at int64
	for at = applied(); at < total/10; at = applied() {
		if time.Now().After(deadline) {
			t.Fatalf("replay applied only %d records in 2 minutes", at)
		}
		select {
		case <-r.done:
			t.Fatalf("replay ended before it could be killed (applied %d):\n%s", at, tail(r.out.String(), 3000))
		default:
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.kill() // SIGKILL, and proves the process died of it
	at = applied()
	if at >= total {
		t.Fatalf("replay had finished (%d of %d) when killed: not a mid-way kill", at, total)
	}
	t.Logf("killed after %d of %d records", at, total)
	if got := tableChecksums(t, target)["t_big"]; got == source["t_big"] {
		t.Fatalf("target equals the source already after the kill: %s", got)
	}

	r = e.startReplay(args...)
	if code, _ := r.wait(3 * time.Minute); code != 0 {
		t.Fatalf("replay after the kill: exit %d", code)
	}
	if !strings.Contains(r.out.String(), fmt.Sprintf(`"records":%d`, total-at)) {
		t.Errorf("the restart should apply exactly the %d records after the stored offsets:\n%s", total-at, tail(r.out.String(), 2000))
	}
	if got := tableChecksums(t, target)["t_big"]; got != source["t_big"] {
		t.Fatalf("after the restart the target is %q, the source %q", got, source["t_big"])
	}
}

func createTables(t *testing.T, dsn, ddl string) {
	t.Helper()
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	if _, err := db.Exec(context.Background(), ddl); err != nil {
		t.Fatal(err)
	}
}
