package connector_test

import (
	"strings"
	"testing"
)

// The scenarios of the comparison with Debezium (compat_test.go).

// typesSetup creates the types every run uses and the table with one column of every type of
// EVENTS.md's mapping table.
var typesSetup = []string{
	`CREATE EXTENSION IF NOT EXISTS hstore`,
	`CREATE EXTENSION IF NOT EXISTS citext`,
	`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
	`CREATE DOMAIN posint AS int4 CHECK (VALUE > 0)`,
	`CREATE DOMAIN code AS varchar(8)`,
	`CREATE DOMAIN amount AS numeric(8,2)`,
	`CREATE TABLE public.alltypes (
		id int PRIMARY KEY,
		b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8,
		n12 numeric(12,3), n5 numeric(5,0), nu numeric, m money,
		t text, vc varchar(10), ch char(5), nm name, ci citext,
		ip inet, cd cidr, mac macaddr, mac8 macaddr8,
		r4 int4range, r8 int8range, rn numrange, rts tsrange, rtz tstzrange, rd daterange,
		u uuid, j json, jb jsonb, x xml, ba bytea,
		d date, tm time, tm0 time(0), tm3 time(3), ttz timetz,
		ts timestamp, ts0 timestamp(0), ts3 timestamp(3), tz timestamptz, tz0 timestamptz(0), tz3 timestamptz(3),
		iv interval,
		e mood,
		ai4 int4[], ai2 int2[], ai8 int8[], at text[], avc varchar(5)[], anum numeric[], af8 float8[], ab bool[],
		ad date[], au uuid[], atz timestamptz[], ats timestamp[], aba bytea[], ajb jsonb[],
		bt1 bit(1), bt8 bit(8), vb varbit(16),
		hs hstore,
		big text)`,
	`CREATE TABLE public.custom (id int PRIMARY KEY, m mood NOT NULL DEFAULT 'ok', ms mood[], d posint, ds posint[], c code, cs code[], a amount, aa amount[])`,
}

// allTypes: one column of every type of EVENTS.md's first mapping table (typesSetup); its values
// are typical, NULL, extremes, special values.
var allTypes = typeTable{
	name:   "alltypes",
	setup:  typesSetup,
	script: allTypesScript,
	rows: []string{
		`true, 12, 1234, 123456789012, 1.5, 3.14159265358979,
		123456789.123, 42, 3.14159, 1234.56,
		'text', 'varchar', 'ch', 'name', 'CiText',
		'192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05',
		'[1,10)', '[1,1000000000000)', '(1.5,2.5]', '[2024-01-01 10:00,2024-01-02 11:00)', '[2024-01-01 10:00+00,2024-01-02 11:00+02)', '[2024-01-01,2024-02-01)',
		'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": 1, "b": [1, 2.50, "x"]}', '{"a": 1, "b": [1, 2.50, "x"]}', '<a>x</a>', '\xdeadbeef00',
		'2024-05-06', '07:08:09.123456', '07:08:09', '07:08:09.123', '07:08:09.5+02',
		'2024-05-06 07:08:09.123456', '2024-05-06 07:08:09', '2024-05-06 07:08:09.123', '2024-05-06 07:08:09.123456+02', '2024-05-06 07:08:09+00', '2024-05-06 07:08:09.100+00',
		'1 year 2 mons 3 days 04:05:06.789',
		'happy',
		'{1,2,3}', '{1,-2}', '{9223372036854775807}', '{"a","b c","d\"e",NULL}', '{x,yy}', '{1.5,NULL,-2}', '{1.5,NaN,Infinity}', '{t,f,NULL}',
		'{2024-01-01,NULL}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '{"2024-05-06 07:08:09+00"}', '{"2024-05-06 07:08:09.5"}', '{"\\xdead",NULL}', '{"{\"a\": 1}"}',
		B'1', B'10101010', B'1011',
		'a=>1, "b c"=>"d e", n=>NULL',
		NULL`,
		`(b) NULL`,
		`false, -32768, 2147483647, -9223372036854775808, 'NaN', 'Infinity',
		-999999999.999, 99999, ` + thousandDigits + `, -92233720368547758.08,
		'héllo wörld ✓ 🎉 "q" \ back' || chr(10) || chr(9) || chr(1), '', 'a', 'n', '',
		'::1', '2001:db8::/32', '00:00:00:00:00:00', '00:00:00:00:00:00:00:00',
		'empty', '(,5]', '[-1.5,)', '(,)', 'empty', '[2024-01-01,2024-01-01]',
		'00000000-0000-0000-0000-000000000000', '[]', '{}', '<r/>', '\x',
		'infinity', '00:00:00', '23:59:59', '24:00:00', '00:00:00-14:59',
		'infinity', '-infinity', '0001-01-01 00:00:00', '-infinity', 'infinity', '1970-01-01 00:00:00+00',
		'-178000000 years',
		'sad',
		'{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}',
		'{}', '{}', '{}', '{}', '{}', '{}',
		B'0', B'00000000', B'',
		'',
		NULL`,
		`NULL, 32767, -2147483648, 9223372036854775807, '-Infinity', 'NaN',
		0.001, -1, 'NaN', 0,
		'''quoted'' and "double" </script>  ', 'x', NULL, NULL, NULL,
		'10.1.2.3', NULL, NULL, NULL,
		NULL, NULL, NULL, NULL, NULL, NULL,
		NULL, 'null', '"str"', NULL, '\x00ff',
		'-infinity', '12:00:00.000001', NULL, NULL, '23:59:59.999999+14',
		'1970-01-01 00:00:00.000001', NULL, '1969-12-31 23:59:59.999', '2000-02-29 12:00:00-08', NULL, NULL,
		'-1 days +02:03:04.5',
		'ok',
		'{NULL}', NULL, NULL, '{""}', NULL, '{0.000001}', '{-0}', NULL,
		'{infinity}', NULL, NULL, NULL, NULL, NULL,
		NULL, NULL, NULL,
		'"k"=>"v"',
		NULL`,
		`(nu, n12, f4, f8, d, ts, tz, iv, ttz) -` + thousandDigits + `.000000000000000000001, 1e-3, 3.4028235e38, 1.7976931348623157e308,
		'0044-03-15 BC', '0044-03-15 12:00:00 BC', '0044-03-15 12:00:00+00 BC', '100 years', '00:00:00+00'`,
		`(nu, f4, f8, d, ts, tz, iv, hs, ad) 0.0000000000000000000000000000000001, 1e-45, 5e-324, '5874897-12-31', '294276-12-31 23:59:59.999999', '294276-12-31 23:59:59.999999+00', '-3 years -2 mons',
		'k1=>v1, k2=>v2, k3=>v3, k4=>v4, k5=>v5, k6=>v6, k7=>v7, k8=>v8, k9=>v9, k10=>v10, k11=>v11, k12=>v12, k13=>v13, zz=>"\"q\"", "é🎉"=>x',
		'{-infinity,1970-01-01,4713-01-01 BC}'`,
	},
}

// thousandDigits is a 1000-digit integer.
var thousandDigits = "9" + strings.Repeat("8765432101", 99) + "876543210"

// customTypes: enums, domains and arrays of them (created by typesSetup).
var customTypes = typeTable{
	name: "custom",
	rows: []string{`'happy', '{sad,happy}', 7, '{1,2}', 'abc', '{x,y}', 12.5, '{1.25,NULL}'`, `(d) NULL`},
	script: func(e *env) {
		e.exec(`UPDATE public.custom SET m = 'sad', d = 8 WHERE id = 101`)
		e.exec(`DELETE FROM public.custom WHERE id = 102`)
	},
}

// compTypes: composite types and arrays of them: no Debezium mapping (unknown types).
var compTypes = typeTable{
	name:   "comp",
	unknwn: true,
	setup:  []string{`CREATE TYPE pair AS (a int4, b text)`, `CREATE TABLE public.comp (id int PRIMARY KEY, p pair, ps pair[])`},
	rows:   []string{`ROW(1, 'x y'), ARRAY[ROW(2, 'y')::pair, NULL]`, `NULL, NULL`},
	script: func(e *env) { e.exec(`UPDATE public.comp SET p = ROW(3, NULL) WHERE id = 102`) },
}

// allTypesScript: a TOASTed value unchanged by an update (placeholder), then under REPLICA
// IDENTITY FULL (the real old value), then deleted.
func allTypesScript(e *env) {
	e.exec(`UPDATE public.alltypes SET big = $1 WHERE id = 101`, randomText(1, 12000))
	e.exec(`UPDATE public.alltypes SET i4 = 1 WHERE id = 101`)
	e.exec(`ALTER TABLE public.alltypes REPLICA IDENTITY FULL`)
	e.exec(`UPDATE public.alltypes SET i4 = 2 WHERE id = 101`)
	e.exec(`DELETE FROM public.alltypes WHERE id = 101`)
}

var scenarioSetup = []string{
	`CREATE TABLE public.items (id int PRIMARY KEY, name text, qty int DEFAULT 42, note varchar(20) NOT NULL DEFAULT 'none',
		price numeric(10,2) DEFAULT 1.5, created timestamptz DEFAULT now(), flag bool NOT NULL DEFAULT true, seq serial)`,
	`CREATE TABLE public.fullrow (id int PRIMARY KEY, a text, b int)`,
	`ALTER TABLE public.fullrow REPLICA IDENTITY FULL`,
	`CREATE TABLE public.uidx (a int NOT NULL, b text, c int)`,
	`CREATE UNIQUE INDEX uidx_a ON public.uidx (a)`,
	`ALTER TABLE public.uidx REPLICA IDENTITY USING INDEX uidx_a`,
	`CREATE TABLE public.ufull (a int, b text)`,
	`CREATE UNIQUE INDEX ufull_a ON public.ufull (a)`,
	`ALTER TABLE public.ufull REPLICA IDENTITY FULL`,
	`CREATE TABLE public.nokey (a int, b text)`,
	`ALTER TABLE public.nokey REPLICA IDENTITY FULL`,
	`CREATE TABLE public.evolve (id int PRIMARY KEY, a int, b text)`,
	`CREATE TABLE public.parted (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`,
	`CREATE TABLE public.parted_eu PARTITION OF public.parted FOR VALUES IN ('eu')`,
	`CREATE TABLE public.parted_us PARTITION OF public.parted FOR VALUES IN ('us')`,
	`CREATE TABLE public.trunc (id int PRIMARY KEY)`,
}

func scenarioScript(e *env) {
	// inserts, updates, deletes (+ tombstones), a multi-change transaction, a primary-key change
	// (created is given: its default now() would differ between runs and the golden files)
	e.exec(`INSERT INTO public.items (id, name, created) VALUES (1, 'apple', '2024-01-01 00:00:00+00')`)
	e.exec(`INSERT INTO public.items VALUES (2, 'pear', 3, 'ripe', 2.25, '2024-01-02 03:04:05+00', false)`)
	e.exec(`BEGIN; INSERT INTO public.items (id, name, created) VALUES (10, 'ten', '2024-01-01 00:00:00+00'); UPDATE public.items SET name = 'green apple' WHERE id = 1; INSERT INTO public.items (id, created) VALUES (11, NULL); COMMIT`)
	// a transaction over several tables (the END event lists them in Debezium's HashMap order)
	e.exec(`BEGIN; INSERT INTO public.uidx VALUES (50, 'm', 5); INSERT INTO public.items (id, name, created) VALUES (50, 'multi', '2024-01-01 00:00:00+00'); INSERT INTO public.fullrow VALUES (50, 'm', 5); INSERT INTO public.nokey VALUES (50, 'm'); COMMIT`)
	for i := 20; i < 40; i++ { // enough keys to spread over the partitions
		e.exec(`INSERT INTO public.items (id, name, created) VALUES ($1, 'k', '2024-01-01 00:00:00+00')`, i)
	}
	e.exec(`DELETE FROM public.items WHERE id = 2`)
	e.exec(`UPDATE public.items SET id = 3 WHERE id = 1`)
	e.exec(`UPDATE public.items SET qty = NULL, created = NULL WHERE id = 3`)

	// REPLICA IDENTITY FULL before-images
	e.exec(`INSERT INTO public.fullrow VALUES (1, 'a', 1)`)
	e.exec(`UPDATE public.fullrow SET a = 'b', b = NULL WHERE id = 1`)
	e.exec(`UPDATE public.fullrow SET id = 2 WHERE id = 1`)
	e.exec(`DELETE FROM public.fullrow WHERE id = 2`)

	// no primary key: a unique index as replica identity; a unique index under FULL; no key at all
	e.exec(`INSERT INTO public.uidx VALUES (1, 'x', 1)`)
	e.exec(`UPDATE public.uidx SET c = 2 WHERE a = 1`)
	e.exec(`UPDATE public.uidx SET a = 2 WHERE a = 1`)
	e.exec(`DELETE FROM public.uidx WHERE a = 2`)
	e.exec(`INSERT INTO public.ufull VALUES (1, 'x')`)
	e.exec(`UPDATE public.ufull SET b = 'y' WHERE a = 1`)
	e.exec(`DELETE FROM public.ufull WHERE a = 1`)
	e.exec(`INSERT INTO public.nokey VALUES (1, 'x'), (1, 'x')`)
	e.exec(`UPDATE public.nokey SET b = 'y' WHERE a = 1`)
	e.exec(`DELETE FROM public.nokey WHERE a = 1`)

	// schema evolution between transactions
	e.exec(`INSERT INTO public.evolve VALUES (1, 10, 'b1')`)
	e.exec(`ALTER TABLE public.evolve ADD COLUMN c text DEFAULT 'x'`)
	e.exec(`INSERT INTO public.evolve VALUES (2, 20, 'b2', 'c2')`)
	e.exec(`UPDATE public.evolve SET c = 'c1' WHERE id = 1`)
	e.exec(`ALTER TABLE public.evolve DROP COLUMN b`)
	e.exec(`INSERT INTO public.evolve VALUES (3, 30, 'c3')`)
	e.exec(`ALTER TABLE public.evolve ALTER COLUMN a TYPE bigint`)
	e.exec(`INSERT INTO public.evolve VALUES (4, 40000000000, 'c4')`)
	e.exec(`ALTER TABLE public.evolve RENAME COLUMN c TO d`)
	e.exec(`INSERT INTO public.evolve VALUES (5, 5, 'd5')`)
	e.exec(`UPDATE public.evolve SET d = 'd55' WHERE id = 5`)
	e.exec(`DELETE FROM public.evolve WHERE id = 4`)

	// partitioned table: every partition under the root's topic
	e.exec(`INSERT INTO public.parted VALUES (1, 'eu', 1), (2, 'us', 2)`)
	e.exec(`UPDATE public.parted SET v = 3 WHERE id = 2`)
	e.exec(`UPDATE public.parted SET region = 'us' WHERE id = 1`) // moves the row to another partition
	e.exec(`DELETE FROM public.parted WHERE id = 2`)

	// truncate, logical decoding messages (transactional and not)
	e.exec(`INSERT INTO public.trunc VALUES (1), (2)`)
	e.exec(`TRUNCATE public.trunc`)
	e.exec(`SELECT pg_logical_emit_message(true, 'app', 'in a transaction')`)
	e.exec(`SELECT pg_logical_emit_message(false, 'app.other', '\x00ff'::bytea)`)
	e.exec(`BEGIN; INSERT INTO public.trunc VALUES (3); SELECT pg_logical_emit_message(true, 'app', 'with a change'); COMMIT`)
}

var scenarioTables = []string{"items", "fullrow", "uidx", "ufull", "nokey", "evolve", "parted", "trunc"}

// The type tables: mapped types (every run), PostGIS (some runs: its extension takes a while to
// create), unknown types (runs that pass them through as text).
var (
	mappedTypes  = []typeTable{allTypes, customTypes, moreTypes, vectorTypes, namesTable, generatedTable, toastTable}
	postgisTypes = []typeTable{geoTypes}
	unknownTypes = []typeTable{unknownTypesTable, compTypes}
)

func typeTables(groups ...[]typeTable) []typeTable {
	var out []typeTable
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// compatRuns are the mode sets of the comparison. Together they use every value of every mode
// once at least (time precision 6, binary handling 4, decimal handling 3, name adjustments 3,
// interval, hstore, unknown types 2), keys and values with schemas and without, partitioned
// tables through their root and as leaves; every run has snapshot records (rows written before
// the connectors start) and streamed ones.
func compatRuns() []compatRun {
	return []compatRun{
		{
			// Schema changes between a change and its decoding (issue 13): Debezium decodes them
			// live; pgcdc live for the script, and after all of the DDL for whileStopped.
			name:       "ddl",
			keySchemas: true, valueSchemas: true, partitions: 1,
			tables: []string{"dd", "ddr"},
			setup: []string{
				`CREATE TYPE public.mood AS ENUM ('happy', 'sad')`,
				`CREATE TABLE public.dd (id int PRIMARY KEY, amount numeric(10,2), at timestamp(0), note text, m public.mood)`,
			},
			script: func(e *env) {
				e.exec(`INSERT INTO public.dd VALUES (1, 12.34, '2026-01-01 10:00:00', 'a', 'happy')`)
				e.exec(`ALTER TABLE public.dd ALTER amount TYPE numeric(12,4), ALTER at TYPE timestamp(6)`)
				e.exec(`INSERT INTO public.dd VALUES (2, 12.3456, '2026-01-01 10:00:00.123456', 'b', 'sad')`)
				e.exec(`ALTER TABLE public.dd ADD COLUMN extra int`)
				e.exec(`INSERT INTO public.dd VALUES (3, 1.5, '2026-01-01 10:00:01', 'c', 'happy', 33)`)
			},
			whileStopped: []string{
				`INSERT INTO public.dd VALUES (4, 2.5, '2026-01-01 10:00:02.5', 'd', 'sad', 44)`,
				`ALTER TABLE public.dd ALTER amount TYPE numeric(10,2) USING round(amount, 2), ALTER at TYPE timestamp(0)`,
				`ALTER TYPE public.mood ADD VALUE 'ok'`,
				`INSERT INTO public.dd VALUES (5, 7.25, '2026-01-01 10:00:03', 'e', 'ok', 55)`,
				`ALTER TABLE public.dd RENAME COLUMN note TO remark`,
				`UPDATE public.dd SET remark = 'renamed' WHERE id = 1`,
				`ALTER TABLE public.dd DROP COLUMN extra`,
				`INSERT INTO public.dd VALUES (6, 3, '2026-01-01 10:00:04', 'f', 'happy')`,
				`ALTER TABLE public.dd ALTER COLUMN id TYPE bigint`,
				`DELETE FROM public.dd WHERE id = 2`,
				`ALTER TABLE public.dd RENAME TO ddr`,
				`INSERT INTO public.ddr VALUES (7, 4, '2026-01-01 10:00:05', 'g', 'sad')`,
			},
		},
		{
			// Debezium's defaults, schemas in keys and values, 3 partitions, every scenario, truncate
			// events, logical decoding messages and transaction metadata.
			name:       "defaults",
			keySchemas: true, valueSchemas: true, partitions: 3,
			tables: scenarioTables, setup: scenarioSetup, script: scenarioScript,
			types: typeTables(mappedTypes, postgisTypes),
			dbz: map[string]string{
				"skipped.operations":           "none",
				"provide.transaction.metadata": "true",
			},
			pgcdc: map[string]string{
				"PGCDC_EVENTS_TRUNCATE":             "true",
				"PGCDC_EVENTS_TRANSACTION_METADATA": "true",
			},
			extraTopics: []string{"transaction", "message"},
			check:       checkDefaults,
		},
		{
			name:       "micro_string_base64_map_avro",
			keySchemas: true, valueSchemas: true, partitions: 1,
			types: typeTables(mappedTypes, unknownTypes),
			dbz: map[string]string{
				"time.precision.mode":         "adaptive_time_microseconds",
				"decimal.handling.mode":       "string",
				"binary.handling.mode":        "base64",
				"interval.handling.mode":      "string",
				"hstore.handling.mode":        "map",
				"schema.name.adjustment.mode": "avro",
				"field.name.adjustment.mode":  "avro",
				"include.unknown.datatypes":   "true",
			},
			pgcdc: map[string]string{
				"PGCDC_EVENTS_TIME_PRECISION":         "adaptive_time_microseconds",
				"PGCDC_EVENTS_DECIMAL_HANDLING":       "string",
				"PGCDC_EVENTS_BINARY_HANDLING":        "base64",
				"PGCDC_EVENTS_INTERVAL_HANDLING":      "string",
				"PGCDC_EVENTS_HSTORE_HANDLING":        "map",
				"PGCDC_EVENTS_SCHEMA_NAME_ADJUSTMENT": "avro",
				"PGCDC_EVENTS_FIELD_NAME_ADJUSTMENT":  "avro",
				"PGCDC_EVENTS_UNKNOWN_TYPES":          "text",
			},
		},
		{
			// keys without schemas (partitions equal, not only murmur2-consistent); messages with
			// hex content
			name:       "isostring_double_hex_unicode",
			keySchemas: false, valueSchemas: true, partitions: 3,
			types:  typeTables(mappedTypes, postgisTypes, unknownTypes),
			script: messagesScript,
			dbz: map[string]string{
				"time.precision.mode":         "isostring",
				"decimal.handling.mode":       "double",
				"binary.handling.mode":        "hex",
				"schema.name.adjustment.mode": "avro_unicode",
				"field.name.adjustment.mode":  "avro_unicode",
				"include.unknown.datatypes":   "true",
			},
			pgcdc: map[string]string{
				"PGCDC_EVENTS_TIME_PRECISION":         "isostring",
				"PGCDC_EVENTS_DECIMAL_HANDLING":       "double",
				"PGCDC_EVENTS_BINARY_HANDLING":        "hex",
				"PGCDC_EVENTS_SCHEMA_NAME_ADJUSTMENT": "avro_unicode",
				"PGCDC_EVENTS_FIELD_NAME_ADJUSTMENT":  "avro_unicode",
				"PGCDC_EVENTS_UNKNOWN_TYPES":          "text",
			},
			extraTopics: []string{"message"},
		},
		{
			// no schemas at all; every scenario again; partitions with their own topics
			name:       "connect_urlsafe_noschema_leaves",
			keySchemas: false, valueSchemas: false, partitions: 2,
			tables:       []string{"items", "fullrow", "uidx", "ufull", "nokey", "evolve", "parted_eu", "parted_us"},
			pgcdcInclude: []string{"items", "fullrow", "uidx", "ufull", "nokey", "evolve", "parted"},
			dbzInclude:   []string{"items", "fullrow", "uidx", "ufull", "nokey", "evolve", "parted_.*"},
			setup:        scenarioSetup, script: scenarioScript,
			types: typeTables(mappedTypes),
			dbz: map[string]string{
				"time.precision.mode":        "connect",
				"binary.handling.mode":       "base64-url-safe",
				"interval.handling.mode":     "string",
				"hstore.handling.mode":       "map",
				"publish.via.partition.root": "false",
			},
			pgcdc: map[string]string{
				"PGCDC_EVENTS_TIME_PRECISION":             "connect",
				"PGCDC_EVENTS_BINARY_HANDLING":            "base64-url-safe",
				"PGCDC_EVENTS_INTERVAL_HANDLING":          "string",
				"PGCDC_EVENTS_HSTORE_HANDLING":            "map",
				"PGCDC_TABLES_PUBLISH_VIA_PARTITION_ROOT": "false",
			},
		},
		{
			name:       "microseconds_avro_unicode_fields",
			keySchemas: true, valueSchemas: false, partitions: 2,
			types: typeTables(mappedTypes, unknownTypes),
			dbz: map[string]string{
				"time.precision.mode":         "microseconds",
				"decimal.handling.mode":       "string",
				"schema.name.adjustment.mode": "avro",
				"field.name.adjustment.mode":  "avro_unicode",
				"include.unknown.datatypes":   "true",
			},
			pgcdc: map[string]string{
				"PGCDC_EVENTS_TIME_PRECISION":         "microseconds",
				"PGCDC_EVENTS_DECIMAL_HANDLING":       "string",
				"PGCDC_EVENTS_SCHEMA_NAME_ADJUSTMENT": "avro",
				"PGCDC_EVENTS_FIELD_NAME_ADJUSTMENT":  "avro_unicode",
				"PGCDC_EVENTS_UNKNOWN_TYPES":          "text",
			},
		},
		{
			name:       "nanoseconds_double_base64",
			keySchemas: false, valueSchemas: true, partitions: 1,
			types: typeTables(mappedTypes, postgisTypes),
			dbz: map[string]string{
				"time.precision.mode":         "nanoseconds",
				"decimal.handling.mode":       "double",
				"binary.handling.mode":        "base64",
				"interval.handling.mode":      "string",
				"hstore.handling.mode":        "map",
				"schema.name.adjustment.mode": "avro_unicode",
				"field.name.adjustment.mode":  "avro",
			},
			pgcdc: map[string]string{
				"PGCDC_EVENTS_TIME_PRECISION":         "nanoseconds",
				"PGCDC_EVENTS_DECIMAL_HANDLING":       "double",
				"PGCDC_EVENTS_BINARY_HANDLING":        "base64",
				"PGCDC_EVENTS_INTERVAL_HANDLING":      "string",
				"PGCDC_EVENTS_HSTORE_HANDLING":        "map",
				"PGCDC_EVENTS_SCHEMA_NAME_ADJUSTMENT": "avro_unicode",
				"PGCDC_EVENTS_FIELD_NAME_ADJUSTMENT":  "avro",
			},
		},
	}
}

// messagesScript writes logical decoding messages, transactional and not.
func messagesScript(e *env) {
	e.exec(`SELECT pg_logical_emit_message(true, 'app', 'in a transaction')`)
	e.exec(`SELECT pg_logical_emit_message(false, 'app.other', '\x00ff'::bytea)`)
}

// checkDefaults asserts what the diff alone would not show: the unchanged TOAST value was decoded
// as such ('u': the placeholder, not a null) and filled from the old row under REPLICA IDENTITY
// FULL; the partitions' changes went to the root's topic.
func checkDefaults(t *testing.T, got map[string][]rec) {
	var placeholder, filled int
	for _, r := range got["public.alltypes"] {
		pl := payloadOf(r.value)
		if pl == nil || pl.vals["op"] != "u" {
			continue
		}
		after, _ := pl.vals["after"].(*jobj)
		before, _ := pl.vals["before"].(*jobj)
		big, _ := after.get("big")
		switch {
		case big == "__debezium_unavailable_value" && pl.vals["before"] == nil:
			placeholder++
		case before != nil && big != nil && before.vals["big"] == big && big != "__debezium_unavailable_value":
			filled++
		}
	}
	if placeholder != 1 || filled != 1 {
		t.Errorf("alltypes updates: %d with the TOAST placeholder (want 1), %d with the old value filled in under FULL (want 1)", placeholder, filled)
	}
	if n := len(got["public.parted"]); n < 6 {
		t.Errorf("public.parted: %d records, want at least 6 (inserts into two partitions, updates, a row moved between partitions, a delete and its tombstone)", n)
	}
}
