package connector_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// TestReplayShapedTopics: replay rebuilds a database from topics shaped as Debezium users
// configure them (docs/shaping.md) — flattened by ExtractNewRecordState (rewritten deletes,
// added fields, unchanged fields dropped; and, without schemas, deletes as records without a
// row), with masked, truncated and excluded columns — and refuses, naming the reason, the shapes
// it cannot rebuild: a masked key column, a keyless table's flattened topic, a topic of several
// tables (ByLogicalTableRouter).
func TestReplayShapedTopics(t *testing.T) {
	t.Run("schemas", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		e.exec(`
CREATE TABLE t_shop (id int PRIMARY KEY, name text, bio text, secret text, qty int);
ALTER TABLE t_shop REPLICA IDENTITY FULL;
CREATE TABLE t_toast (id int PRIMARY KEY, small int, body text);
CREATE TABLE t_nokey (tag text, v int);
ALTER TABLE t_nokey REPLICA IDENTITY FULL;
CREATE TABLE t_mkey (id int PRIMARY KEY, email text NOT NULL);
CREATE TABLE shard_1 (id int PRIMARY KEY, v text);
CREATE TABLE shard_2 (id int PRIMARY KEY, v text);`)
		p := e.start(map[string]string{
			"PGCDC_KAFKA_PARTITIONS":                              "3",
			"PGCDC_TABLES_COLUMN_EXCLUDE_LIST":                    `public\.t_shop\.secret`,
			"PGCDC_TABLES_COLUMN_MAPPERS":                         `column.mask.with.4.chars=public\.t_shop\.name|public\.t_mkey\.email,column.truncate.to.5.chars=public\.t_shop\.bio`,
			"PGCDC_TABLES_MESSAGE_KEY_COLUMNS":                    "public.t_mkey:email",
			"PGCDC_EVENTS_FORMAT":                                 "io.debezium.transforms.ExtractNewRecordState",
			"PGCDC_EVENTS_UNWRAP_DELETE_TOMBSTONE_HANDLING_MODE":  "rewrite",
			"PGCDC_EVENTS_UNWRAP_ADD_FIELDS":                      "op,lsn,source.ts_ms",
			"PGCDC_EVENTS_UNWRAP_DROP_FIELDS_HEADER_NAME":         "Unchanged",
			"PGCDC_EVENTS_CHANGED_FIELDS_HEADER_UNCHANGED_NAME":   "Unchanged",
			"PGCDC_EVENTS_LOGICAL_TABLE_ROUTER_TOPIC_REGEX":       `(.*)\.public\.shard_.*`,
			"PGCDC_EVENTS_LOGICAL_TABLE_ROUTER_TOPIC_REPLACEMENT": "$1.public.shards",
		})
		p.waitStreaming()
		e.exec(`
INSERT INTO t_shop SELECT g, CASE WHEN g % 4 = 0 THEN NULL ELSE 'name ' || g END, 'biography ' || g, 'secret ' || g, g FROM generate_series(1, 60) g;
UPDATE t_shop SET qty = qty * 10 WHERE id % 3 = 0;   -- the unchanged fields are left out of the rows
UPDATE t_shop SET bio = 'new ' || id WHERE id % 5 = 0;
DELETE FROM t_shop WHERE id % 7 = 0;                 -- rewritten: the old row with __deleted "true"
UPDATE t_shop SET id = id + 1000 WHERE id % 11 = 0;  -- a key change: delete and create
INSERT INTO t_toast SELECT g, g, (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 300) i) FROM generate_series(1, 20) g;
UPDATE t_toast SET small = small + 100 WHERE id % 2 = 0;      -- body unchanged: the TOAST placeholder
UPDATE t_toast SET id = id + 1000 WHERE id IN (3, 4, 7, 8);   -- new keys with the placeholder: carried from the old rows
DELETE FROM t_toast WHERE id = 5;
INSERT INTO t_nokey VALUES ('a', 1), ('b', 2);
INSERT INTO t_mkey VALUES (1, 'a@x'), (2, 'b@x');
INSERT INTO shard_1 VALUES (1, 'x'); INSERT INTO shard_2 VALUES (1, 'y');`)
		e.waitDelivered(90 * time.Second)
		if code := p.stop(); code != 0 {
			t.Fatalf("pgcdc exit %d", code)
		}
		// What the topics say the tables are: masked names, bios cut to 5 characters, no secret.
		want := queryOne(t, e.dsn, `SELECT string_agg(format('%s|%s|%s|%s', id, '****', left(bio, 5), qty), ',' ORDER BY id) FROM t_shop`)
		wantToast := tableChecksums(t, e.dsn)["t_toast"]

		target := testenv.NewDatabase(t)
		r := e.startReplay(e.replayArgs(target, "--create-tables", "--tables", "public.t_shop,public.t_toast")...)
		if code, _ := r.wait(2 * time.Minute); code != 0 {
			t.Fatalf("replay exit %d:\n%s", code, tail(r.out.String(), 4000))
		}
		if got := queryOne(t, target, `SELECT string_agg(format('%s|%s|%s|%s', id, name, bio, qty), ',' ORDER BY id) FROM t_shop`); got != want {
			t.Errorf("t_shop:\n target %s\n want   %s", got, want)
		}
		if cols := queryOne(t, target, `SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 't_shop'`); cols != "id,name,bio,qty" {
			t.Errorf("t_shop columns %s: the excluded column and the added fields are not columns", cols)
		}
		if got := tableChecksums(t, target)["t_toast"]; got != wantToast {
			t.Errorf("t_toast: target %s, source %s", got, wantToast)
		}

		for _, tc := range []struct{ args, want string }{
			{"--tables=public.t_nokey", "of a table without a key"},
			{"--tables=public.shards", "several tables (ByLogicalTableRouter)"},
			{"--tables=public.t_mkey", `has another value in the row than in the key`},
		} {
			r := e.startReplay(e.replayArgs(testenv.NewDatabase(t), "--create-tables", tc.args)...)
			code, _ := r.wait(2 * time.Minute)
			if code == 0 || !strings.Contains(r.out.String(), tc.want) {
				t.Errorf("replay %s: exit %d, want a failure saying %q:\n%s", tc.args, code, tc.want, tail(r.out.String(), 3000))
			}
		}
	})

	t.Run("no-schemas", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		const ddl = `CREATE TABLE t_plain (id int PRIMARY KEY, v text, n numeric(10,2));`
		e.exec(ddl)
		p := e.start(map[string]string{
			"PGCDC_KAFKA_PARTITIONS": "3", "PGCDC_EVENTS_KEY_SCHEMAS": "false", "PGCDC_EVENTS_VALUE_SCHEMAS": "false",
			"PGCDC_EVENTS_FORMAT": "unwrap", // deletes: records whose value is null (and their tombstones dropped)
		})
		p.waitStreaming()
		e.exec(`
INSERT INTO t_plain SELECT g, 'v' || g, g / 4.0 FROM generate_series(1, 200) g;
UPDATE t_plain SET v = 'u' || id WHERE id % 3 = 0;
DELETE FROM t_plain WHERE id % 5 = 0;
UPDATE t_plain SET id = id + 1000 WHERE id % 7 = 0;`)
		e.waitDelivered(90 * time.Second)
		if code := p.stop(); code != 0 {
			t.Fatalf("pgcdc exit %d", code)
		}
		target := testenv.NewDatabase(t)
		createTables(t, target, ddl)
		r := e.startReplay(e.replayArgs(target)...)
		if code, _ := r.wait(2 * time.Minute); code != 0 {
			t.Fatalf("replay exit %d:\n%s", code, tail(r.out.String(), 4000))
		}
		if got, want := tableChecksums(t, target)["t_plain"], tableChecksums(t, e.dsn)["t_plain"]; got != want {
			t.Errorf("t_plain: target %s, source %s", got, want)
		}
	})
}

func queryOne(t *testing.T, dsn, sql string) string {
	t.Helper()
	s, err := queryRow(dsn, sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}
