package connector_test

import (
	"os"
	"strings"
	"testing"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// The comparison with Debezium of the event shaping (docs/shaping.md): column filters and
// mappers, message.key.columns, skipped.operations, tombstones.on.delete, ExtractNewRecordState in
// every delete.tombstone.handling.mode with add.fields/add.headers and drop.fields.header.name,
// ExtractChangedRecordState, RegexRouter and ByLogicalTableRouter, with schemas and without, in a
// snapshot and streaming. The machinery is compat_test.go's: TestShapingGolden (make test) checks
// pgcdc against Debezium's records kept in testdata/compat/shape_*; TestShapingDebezium (make
// test-long) runs Debezium 3.6.1 itself beside pgcdc and also checks its records against the golden
// files. Regenerate them with:
//
//	PGCDC_TEST_LONG=1 go run ./internal/cmd/testenv -- go test -run TestShapingDebezium ./connector -update-golden

func TestShapingGolden(t *testing.T) {
	testenv.Require(t)
	for _, r := range shapingRuns() {
		t.Run(r.name, func(t *testing.T) { runCompat(t, r, false, nil) })
	}
}

func TestShapingDebezium(t *testing.T) {
	testenv.Require(t)
	if os.Getenv("PGCDC_TEST_LONG") == "" && !*updateGolden {
		t.Skip("the live comparison with Debezium runs in make test-long (PGCDC_TEST_LONG=1); make test checks the golden files (TestShapingGolden)")
	}
	for _, r := range shapingRuns() {
		t.Run(r.name, func(t *testing.T) { runCompat(t, r, true, nil) })
	}
}

// envMap joins Debezium-style properties into a PGCDC_* mapping value ("k=v,k=v").
func envMap(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, kv[i]+"="+kv[i+1])
	}
	return strings.Join(parts, ",")
}

func shapingRuns() []compatRun {
	// Run 1: the columns and keys of a table, in the snapshot and streaming (envelope format).
	const (
		exclude  = `PUBLIC\.PEOPLE\.SECRET` // case-insensitive, as in Debezium
		mask     = `public\.people\.(age|nick)`
		hash     = `public\.people\.(name|code|note)`
		hashV2   = `public\.people\.city`
		truncate = `public\.people\.(bio|short|blob)`
		keyCols  = "public.people:email;public.nokeyp:a,b"
	)
	columns := compatRun{
		name:       "shape_columns",
		keySchemas: true, valueSchemas: true, partitions: 2,
		maskBoth: true, // snapshot records carry each connector's own slot positions
		tables:   []string{"people", "nokeyp", "tr"},
		setup: []string{
			`CREATE TABLE public.people (id int PRIMARY KEY, email text NOT NULL, name text, code varchar(8), city text, age int,
				nick text, bio text, short varchar(3), blob bytea, secret text, note text DEFAULT 'dflt')`,
			`CREATE TABLE public.nokeyp (a int, b text, c text)`,
			`ALTER TABLE public.nokeyp REPLICA IDENTITY FULL`,
			`CREATE TABLE public.tr (id int PRIMARY KEY)`,
			// the snapshot's rows
			`INSERT INTO public.people VALUES (1, 'ann@example.com', 'Ann', 'A-000001', 'Paris', 30, 'annie', 'Ann''s biography', 'abc', '\xdeadbeef00', 's1', 'n1'),
				(2, 'bob@example.com', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
		},
		script: func(e *env) {
			e.exec(`INSERT INTO public.people VALUES (3, 'cy@example.com', 'Cy ✓ 🎉', 'C-000003', 'Zürich', 41, NULL, 'héllo wörld 🎉 and more', 'xy', '\x00ff00ff11', 's3', NULL)`)
			e.exec(`UPDATE public.people SET email = 'ann@new.example' WHERE id = 1`) // the key column: no old image under DEFAULT, a plain update
			e.exec(`UPDATE public.people SET name = $1, bio = $2 WHERE id = 3`, randomText(3, 12000), randomText(4, 12000))
			e.exec(`UPDATE public.people SET age = 42 WHERE id = 3`) // name and bio unchanged TOAST: placeholders hashed and cut
			e.exec(`DELETE FROM public.people WHERE id = 2`)         // the old image has only id: the key's email is ""
			e.exec(`INSERT INTO public.nokeyp VALUES (1, 'x', 'y'), (2, 'p', 'q')`)
			e.exec(`UPDATE public.nokeyp SET b = 'z' WHERE a = 2`) // the key (a, b) changes: a delete and a create
			e.exec(`UPDATE public.nokeyp SET c = 'w' WHERE a = 1`)
			e.exec(`DELETE FROM public.nokeyp WHERE a = 1`)
			e.exec(`INSERT INTO public.tr VALUES (1)`)
			e.exec(`TRUNCATE public.tr`)
		},
		dbz: map[string]string{
			"snapshot.mode":                             "initial",
			"column.exclude.list":                       exclude,
			"column.mask.with.6.chars":                  mask,
			"column.mask.hash.SHA-256.with.salt.pepper": hash,
			"column.mask.hash.v2.MD5.with.salt.x":       hashV2,
			"column.truncate.to.4.chars":                truncate,
			"message.key.columns":                       keyCols,
			"tombstones.on.delete":                      "false",
			"skipped.operations":                        "none",
		},
		pgcdc: map[string]string{
			"PGCDC_TABLES_COLUMN_EXCLUDE_LIST": exclude,
			"PGCDC_TABLES_COLUMN_MAPPERS": envMap("column.mask.with.6.chars", mask, "column.mask.hash.SHA-256.with.salt.pepper", hash,
				"column.mask.hash.v2.MD5.with.salt.x", hashV2, "column.truncate.to.4.chars", truncate),
			"PGCDC_TABLES_MESSAGE_KEY_COLUMNS":  keyCols,
			"PGCDC_EVENTS_TOMBSTONES_ON_DELETE": "false",
			"PGCDC_EVENTS_SKIPPED_OPERATIONS":   "none",
		},
		check: checkShapeColumns,
	}

	// Run 2: ExtractNewRecordState in every non-default delete mode (one table each, a pgcdc
	// process each, predicates on Debezium's side), with ExtractChangedRecordState, added fields
	// and headers, dropped unchanged fields, a column include list and a RegexRouter.
	const include = `public\.orders\.(id|status|amount|note),public\.lines\..*,public\.m_.*\..*,public\.zz_end\..*`
	unwrapProps := func(name, mode, pattern string, p map[string]string) {
		pre := "transforms." + name + "."
		p[pre+"type"] = "io.debezium.transforms.ExtractNewRecordState"
		p[pre+"delete.tombstone.handling.mode"] = mode
		p[pre+"add.fields"] = "op,table,lsn,source.ts_ms"
		p[pre+"add.headers"] = "op,db"
		p[pre+"drop.fields.header.name"] = "Unchanged"
		p[pre+"predicate"] = name
		p["predicates."+name+".type"] = "org.apache.kafka.connect.transforms.predicates.TopicNameMatches"
		p["predicates."+name+".pattern"] = pattern
	}
	unwrapDbz := map[string]string{
		"column.include.list":                      include,
		"transforms":                               "changes,unwrap,unwrapDrop,unwrapDtt,unwrapRwt,unwrapTomb,rename",
		"predicates":                               "unwrap,unwrapDrop,unwrapDtt,unwrapRwt,unwrapTomb",
		"transforms.changes.type":                  "io.debezium.transforms.ExtractChangedRecordState",
		"transforms.changes.header.changed.name":   "Changed",
		"transforms.changes.header.unchanged.name": "Unchanged",
		"transforms.rename.type":                   "org.apache.kafka.connect.transforms.RegexRouter",
		"transforms.rename.regex":                  `(.*)\.public\.orders`,
		"transforms.rename.replacement":            "$1.shop.orders",
		"skipped.operations":                       "t",
	}
	unwrapProps("unwrap", "rewrite", `.*\.public\.(orders|lines|zz_end)`, unwrapDbz)
	unwrapProps("unwrapDrop", "drop", `.*\.public\.m_drop`, unwrapDbz)
	unwrapProps("unwrapDtt", "delete-to-tombstone", `.*\.public\.m_dtt`, unwrapDbz)
	unwrapProps("unwrapRwt", "rewrite-with-tombstone", `.*\.public\.m_rwt`, unwrapDbz)
	unwrapProps("unwrapTomb", "tombstone", `.*\.public\.m_tomb`, unwrapDbz) // the default, with schemas
	mode := func(m, table string) map[string]string {
		return map[string]string{
			"PGCDC_TABLES_INCLUDE": "public." + table, "PGCDC_EVENTS_UNWRAP_DELETE_TOMBSTONE_HANDLING_MODE": m,
		}
	}
	unwrap := compatRun{
		name:       "shape_unwrap",
		keySchemas: true, valueSchemas: true, partitions: 1,
		tables:      []string{"orders", "lines", "m_drop", "m_dtt", "m_rwt", "m_tomb"},
		extraTopics: []string{"shop.orders"},
		// the main pgcdc process captures orders and lines; one process per other delete mode
		pgcdcInclude: []string{"orders", "lines"},
		extraPgcdc: []map[string]string{mode("drop", "m_drop"), mode("delete-to-tombstone", "m_dtt"), mode("rewrite-with-tombstone", "m_rwt"),
			mode("tombstone", "m_tomb")},
		setup: []string{
			`CREATE TABLE public.orders (id int PRIMARY KEY, status text NOT NULL, amount numeric(10,2), note text, internal text)`,
			`ALTER TABLE public.orders REPLICA IDENTITY FULL`,
			`CREATE TABLE public.lines (id int PRIMARY KEY, order_id int, qty int)`,
			`CREATE TABLE public.m_drop (id int PRIMARY KEY, v text)`,
			`CREATE TABLE public.m_dtt (id int PRIMARY KEY, v text)`,
			`CREATE TABLE public.m_rwt (id int PRIMARY KEY, v text)`,
			`CREATE TABLE public.m_tomb (id int PRIMARY KEY, v text)`,
		},
		script: func(e *env) {
			e.exec(`INSERT INTO public.orders VALUES (1, 'new', 9.99, 'n', 'secret'), (2, 'new', 5, NULL, 'x')`)
			e.exec(`UPDATE public.orders SET status = 'paid' WHERE id = 1`) // Changed [status]; the unchanged optional fields dropped
			e.exec(`UPDATE public.orders SET id = 3 WHERE id = 2`)          // a key change: delete (rewritten) and create
			e.exec(`DELETE FROM public.orders WHERE id = 1`)
			e.exec(`INSERT INTO public.lines VALUES (1, 1, 2)`)
			e.exec(`UPDATE public.lines SET qty = 3 WHERE id = 1`)
			e.exec(`DELETE FROM public.lines WHERE id = 1`)
			for _, tb := range []string{"m_drop", "m_dtt", "m_rwt", "m_tomb"} {
				e.exec(`INSERT INTO public.` + tb + ` VALUES (1, 'a'), (2, 'b')`)
				e.exec(`UPDATE public.` + tb + ` SET v = 'c' WHERE id = 1`)
				e.exec(`DELETE FROM public.` + tb + ` WHERE id = 1`)
			}
		},
		dbz: unwrapDbz,
		pgcdc: map[string]string{
			"PGCDC_TABLES_COLUMN_INCLUDE_LIST":                       include,
			"PGCDC_EVENTS_FORMAT":                                    "io.debezium.transforms.ExtractNewRecordState",
			"PGCDC_EVENTS_UNWRAP_DELETE_TOMBSTONE_HANDLING_MODE":     "rewrite",
			"PGCDC_EVENTS_UNWRAP_ADD_FIELDS":                         "op,table,lsn,source.ts_ms",
			"PGCDC_EVENTS_UNWRAP_ADD_HEADERS":                        "op,db",
			"PGCDC_EVENTS_UNWRAP_DROP_FIELDS_HEADER_NAME":            "Unchanged",
			"PGCDC_EVENTS_CHANGED_FIELDS_HEADER_CHANGED_NAME":        "Changed",
			"PGCDC_EVENTS_CHANGED_FIELDS_HEADER_UNCHANGED_NAME":      "Unchanged",
			"PGCDC_EVENTS_REGEX_ROUTER_REGEX":                        `(.*)\.public\.orders`,
			"PGCDC_EVENTS_REGEX_ROUTER_REPLACEMENT":                  "$1.shop.orders",
			"PGCDC_EVENTS_SKIPPED_OPERATIONS":                        "t",
			"PGCDC_EVENTS_UNWRAP_DROP_FIELDS_KEEP_SCHEMA_COMPATIBLE": "true",
		},
		check: checkShapeUnwrap,
	}

	// Run 3: without schemas, on 3 partitions: ByLogicalTableRouter (two shards into one topic,
	// keys kept apart; in two more pgcdc processes without the key field, and with another field
	// name and value), ExtractNewRecordState in its default delete mode, skipped updates.
	const shards, shardTopic = `(.*)\.public\.shard_(a|b)`, "$1.public.shards"
	const ushards, kshards = `(.*)\.public\.ushard_(1|2)`, `(.*)\.public\.kshard_(1|2)`
	router := compatRun{
		name:       "shape_router_noschema",
		keySchemas: false, valueSchemas: false, partitions: 3,
		tables:       []string{"shard_a", "shard_b", "plain", "ushard_1", "ushard_2", "kshard_1", "kshard_2"},
		pgcdcInclude: []string{"shard_a", "shard_b", "plain"},
		extraTopics:  []string{"public.shards", "public.ushards", "public.kshards"},
		extraPgcdc: []map[string]string{{
			"PGCDC_TABLES_INCLUDE":                                     "public.ushard_1,public.ushard_2",
			"PGCDC_EVENTS_LOGICAL_TABLE_ROUTER_TOPIC_REGEX":            ushards,
			"PGCDC_EVENTS_LOGICAL_TABLE_ROUTER_TOPIC_REPLACEMENT":      "$1.public.ushards",
			"PGCDC_EVENTS_LOGICAL_TABLE_ROUTER_KEY_ENFORCE_UNIQUENESS": "false",
		}, {
			"PGCDC_TABLES_INCLUDE":                                    "public.kshard_1,public.kshard_2",
			"PGCDC_EVENTS_LOGICAL_TABLE_ROUTER_TOPIC_REGEX":           kshards,
			"PGCDC_EVENTS_LOGICAL_TABLE_ROUTER_TOPIC_REPLACEMENT":     "$1.public.kshards",
			"PGCDC_EVENTS_LOGICAL_TABLE_ROUTER_KEY_FIELD_NAME":        "shard",
			"PGCDC_EVENTS_LOGICAL_TABLE_ROUTER_KEY_FIELD_REGEX":       `.*_(\d)`,
			"PGCDC_EVENTS_LOGICAL_TABLE_ROUTER_KEY_FIELD_REPLACEMENT": "s$1",
		}},
		setup: []string{
			`CREATE TABLE public.shard_a (id int PRIMARY KEY, v text)`,
			`CREATE TABLE public.shard_b (id int PRIMARY KEY, v text)`,
			`CREATE TABLE public.plain (id int PRIMARY KEY, v text)`,
			`CREATE TABLE public.ushard_1 (id int PRIMARY KEY, v text)`,
			`CREATE TABLE public.ushard_2 (id int PRIMARY KEY, v text)`,
			`CREATE TABLE public.kshard_1 (id int PRIMARY KEY, v text)`,
			`CREATE TABLE public.kshard_2 (id int PRIMARY KEY, v text)`,
		},
		script: func(e *env) {
			for i := 1; i <= 6; i++ { // the same ids in both shards, kept apart by the key field
				e.exec(`INSERT INTO public.shard_a VALUES ($1, 'a')`, i)
				e.exec(`INSERT INTO public.shard_b VALUES ($1, 'b')`, i)
			}
			e.exec(`UPDATE public.shard_a SET v = 'skipped' WHERE id = 1`)
			e.exec(`UPDATE public.shard_b SET id = 9 WHERE id = 2`) // skipped too: Debezium's publication publishes no updates
			e.exec(`DELETE FROM public.shard_a WHERE id = 3`)
			e.exec(`INSERT INTO public.plain VALUES (1, 'x')`)
			e.exec(`UPDATE public.plain SET v = 'y' WHERE id = 1`)
			e.exec(`DELETE FROM public.plain WHERE id = 1`)
			for _, tb := range []string{"ushard_1", "ushard_2", "kshard_1", "kshard_2"} {
				e.exec(`INSERT INTO public.`+tb+` VALUES (1, $1), (2, $1)`, tb)
				e.exec(`DELETE FROM public.` + tb + ` WHERE id = 2`)
			}
		},
		dbz: map[string]string{
			"skipped.operations":                         "u,t",
			"transforms":                                 "reroute,rerouteU,rerouteK,unwrap",
			"transforms.reroute.type":                    "io.debezium.transforms.ByLogicalTableRouter",
			"transforms.reroute.topic.regex":             shards,
			"transforms.reroute.topic.replacement":       shardTopic,
			"transforms.rerouteU.type":                   "io.debezium.transforms.ByLogicalTableRouter",
			"transforms.rerouteU.topic.regex":            ushards,
			"transforms.rerouteU.topic.replacement":      "$1.public.ushards",
			"transforms.rerouteU.key.enforce.uniqueness": "false",
			"transforms.rerouteK.type":                   "io.debezium.transforms.ByLogicalTableRouter",
			"transforms.rerouteK.topic.regex":            kshards,
			"transforms.rerouteK.topic.replacement":      "$1.public.kshards",
			"transforms.rerouteK.key.field.name":         "shard",
			"transforms.rerouteK.key.field.regex":        `.*_(\d)`,
			"transforms.rerouteK.key.field.replacement":  "s$1",
			"transforms.unwrap.type":                     "io.debezium.transforms.ExtractNewRecordState",
		},
		pgcdc: map[string]string{
			"PGCDC_EVENTS_SKIPPED_OPERATIONS":                     "u,t",
			"PGCDC_EVENTS_FORMAT":                                 "unwrap",
			"PGCDC_EVENTS_LOGICAL_TABLE_ROUTER_TOPIC_REGEX":       shards,
			"PGCDC_EVENTS_LOGICAL_TABLE_ROUTER_TOPIC_REPLACEMENT": shardTopic,
		},
		check: checkShapeRouter,
	}
	return []compatRun{columns, unwrap, router}
}

// checkShapeColumns: what the diff alone would not show about pgcdc's own records.
func checkShapeColumns(t *testing.T, got map[string][]rec) {
	var masked, placeholders, snapshot int
	for _, r := range got["public.people"] {
		pl := payloadOf(r.value)
		if pl == nil {
			continue
		}
		if src, ok := pl.vals["source"].(*jobj); ok && src.vals["snapshot"] != "false" {
			snapshot++
		}
		after, ok := pl.vals["after"].(*jobj)
		if !ok {
			continue
		}
		if _, leaked := after.get("secret"); leaked {
			t.Errorf("the excluded column secret is in %s", orderedString(after))
		}
		for _, v := range after.vals {
			if s, ok := v.(string); ok && (s == "Ann" || s == "Paris" || s == "annie" || s == "A-000001") {
				t.Errorf("a masked value in the clear: %q", s)
			}
		}
		if after.vals["nick"] == "******" {
			masked++
		}
		if after.vals["bio"] == "__de" {
			placeholders++
		}
	}
	if snapshot < 2 || masked < 2 || placeholders != 1 {
		t.Errorf("people: %d snapshot records (want 2), %d with nick masked (want >= 2, NULL included), %d with the TOAST placeholder cut (want 1)", snapshot, masked, placeholders)
	}
	for _, r := range got["public.nokeyp"] {
		if r.key == nil {
			t.Errorf("nokeyp record without a key: message.key.columns keys it")
		}
	}
}

func checkShapeUnwrap(t *testing.T, got map[string][]rec) {
	if n := len(got["public.orders"]); n != 0 {
		t.Errorf("%d records in public.orders: RegexRouter moves them to shop.orders", n)
	}
	var deleted int
	for _, r := range got["shop.orders"] {
		if pl := payloadOf(r.value); pl != nil && pl.vals["__deleted"] == "true" {
			deleted++
		}
	}
	if deleted != 2 {
		t.Errorf("shop.orders: %d rewritten deletes, want 2 (a key change's delete and a delete)", deleted)
	}
	if n := len(got["public.m_drop"]); n != 3 {
		t.Errorf("m_drop: %d records, want 3 (two inserts and an update; the delete dropped)", n)
	}
}

func checkShapeRouter(t *testing.T, got map[string][]rec) {
	for _, tb := range []string{"public.shard_a", "public.shard_b"} {
		if n := len(got[tb]); n != 0 {
			t.Errorf("%d records in %s: ByLogicalTableRouter moves them to public.shards", n, tb)
		}
	}
	ids := map[string]bool{}
	for _, r := range got["public.shards"] {
		if r.key != nil {
			ids[orderedString(r.key)] = true
		}
	}
	if len(ids) != 12 {
		t.Errorf("public.shards: %d distinct keys, want 12 (ids 1-6 of both shards, kept apart by __dbz__physicalTableIdentifier)", len(ids))
	}
	for topic, want := range map[string]string{"public.ushards": `{"id":1}`, "public.kshards": `"shard":"s`} {
		for _, r := range got[topic] {
			if k := orderedString(r.key); !strings.Contains(k, want) && !strings.Contains(k, `"id":2`) {
				t.Errorf("%s key %s, want %s", topic, k, want)
			}
		}
	}
}
