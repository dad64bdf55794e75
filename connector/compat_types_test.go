package connector_test

import (
	"fmt"
	"strings"
)

// The type tables of the comparison with Debezium: every PostgreSQL type of README's type table
// (pkg/event/typemap.go), each in a table whose rows are written twice, once before both
// connectors start (snapshot records, ids from 1) and once after (streamed records, ids from 101).

// typeTable is one table of the type comparison.
type typeTable struct {
	name   string       // table name in schema public
	setup  []string     // extensions and types it needs (idempotent), then its CREATE TABLE
	cols   string       // column list of the INSERTs, after id ("" = all, in order)
	rows   []string     // value lists of the rows, after the id
	unknwn bool         // has columns Debezium treats as unknown (only in runs with unknown types passed through)
	script func(e *env) // further changes after the streamed rows
}

// snapshotRows are the INSERTs run before the connectors start; streamRows the same rows after.
func (tt typeTable) snapshotRows() []string { return tt.inserts(1) }
func (tt typeTable) streamRows() []string   { return tt.inserts(101) }

func (tt typeTable) inserts(base int) []string {
	out := make([]string, 0, len(tt.rows))
	cols := ""
	if tt.cols != "" {
		cols = " (id, " + tt.cols + ")"
	}
	for i, r := range tt.rows {
		c := cols
		if strings.HasPrefix(r, "(") { // "(columns) values": this row names its columns
			end := strings.Index(r, ")")
			c, r = " (id, "+r[1:end]+")", strings.TrimSpace(r[end+1:])
		}
		out = append(out, fmt.Sprintf(`INSERT INTO public.%s%s VALUES (%d, %s)`, quoteIdent(tt.name), c, base+i, r))
	}
	return out
}

func quoteIdent(s string) string {
	if strings.ToLower(s) == s && !strings.ContainsAny(s, ` ."-`) {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// fakeVectorTypes creates types named like pgvector's (vector, halfvec, sparsevec) that store and
// print their text as given (text's own input and output functions). pgvector cannot be installed
// here; Debezium recognizes its types by name (TypeRegistry), so with these it converts the text
// pgvector would print exactly as it converts pgvector's values.
var fakeVectorTypes = func() []string {
	var out []string
	for _, n := range []string{"vector", "halfvec", "sparsevec"} {
		out = append(out,
			`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = '`+n+`') THEN
				CREATE TYPE `+n+`;
				CREATE FUNCTION `+n+`_in(cstring) RETURNS `+n+` LANGUAGE internal IMMUTABLE STRICT AS 'textin';
				CREATE FUNCTION `+n+`_out(`+n+`) RETURNS cstring LANGUAGE internal IMMUTABLE STRICT AS 'textout';
				CREATE TYPE `+n+` (INPUT = `+n+`_in, OUTPUT = `+n+`_out, LIKE = text);
			END IF; END $$`)
	}
	return out
}()

var (
	// moreTypes: the scalar types and arrays not in alltypes.
	moreTypes = typeTable{
		name: "moretypes",
		setup: []string{
			`CREATE EXTENSION IF NOT EXISTS hstore`, `CREATE EXTENSION IF NOT EXISTS citext`,
			`CREATE EXTENSION IF NOT EXISTS ltree`, `CREATE EXTENSION IF NOT EXISTS isn`,
			`CREATE TABLE public.moretypes (id int PRIMARY KEY,
				pt point, tsv tsvector, lt ltree, o oid, vbu varbit, vb1 varbit(1), bt bit, c1 "char", isb isbn,
				bpu bpchar, vcu varchar, x2 xml,
				atm time[], atm3 time(3)[], attz timetz[], ats3 timestamp(3)[], atz3 timestamptz(3)[],
				aoid oid[], ach "char"[], abp char(3)[], ainet inet[], acidr cidr[], amac macaddr[], amac8 macaddr8[],
				ar4 int4range[], ar8 int8range[], arn numrange[], arts tsrange[], artz tstzrange[], ard daterange[],
				an52 numeric(5,2)[], af4 float4[], aj json[], acit citext[], alt ltree[], ahs hstore[], atsv tsvector[],
				ai2d int4[], at2d text[], aisb isbn[], atsx timestamp[], adx date[], dx date)`,
		},
		rows: []string{
			`'(1.5,-2.25)', 'a fat cat:1,3A sat:2B', 'Top.Science.Astronomy', 4294967295, B'101', B'1', B'1', 'x', '978-0-393-04002-9',
				'abc ', 'unbounded', '<a b="c">d</a>',
				'{00:00:00,12:34:56.789123,24:00:00,NULL}', '{12:34:56.789}', '{12:34:56.789+02,00:00:00-14:59}', '{"2024-05-06 07:08:09.123"}', '{"2024-05-06 07:08:09.123+02","1582-10-10 12:00:00+00","0044-03-15 12:00:00+00 BC"}',
				'{0,4294967295,NULL}', '{a,b}', '{"ab ",NULL}', '{192.168.0.1/24,::1}', '{10.0.0.0/8}', '{08:00:2b:01:02:03}', '{08:00:2b:01:02:03:04:05}',
				'{"[1,10)",empty}', '{"[1,1000000000000)"}', '{"(1.5,2.5]"}', '{"[\"2024-01-01 10:00\",\"2024-01-02 11:00\")"}', '{"[\"2024-01-01 10:00+00\",\"2024-01-02 11:00+02\")"}', '{"[2024-01-01,2024-02-01)"}',
				'{1.5,-999.99,NULL}', '{1.5,NaN,-Infinity}', '{"{\"a\": 1}",null}', '{AbC,NULL}', '{Top.Science,a.b.c}', '{"\"k\"=>\"v\"","a=>NULL"}', '{"a:1 b:2"}',
				'{{1,2},{3,4}}', '{{a,b},{"c d",NULL}}', '{978-0-393-04002-9}', '{infinity,-infinity,"0044-03-15 12:00:00 BC","1582-10-10 12:00:00","1900-01-01 00:00:00.5"}',
				'{1582-10-10,1582-10-04,"0044-03-15 BC"}', '1582-10-10'`,
			`NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
				NULL, NULL, NULL,
				NULL, NULL, NULL, NULL, NULL,
				NULL, NULL, NULL, NULL, NULL, NULL, NULL,
				NULL, NULL, NULL, NULL, NULL, NULL,
				NULL, NULL, NULL, NULL, NULL, NULL, NULL,
				NULL, NULL, NULL, NULL, NULL, NULL`,
			`'(0,0)', '', '', 0, B'', B'0', B'0', '\001', '0-393-04002-X',
				'', '', '<r/>',
				'{}', '{}', '{}', '{}', '{}',
				'{}', '{}', '{}', '{}', '{}', '{}', '{}',
				'{}', '{}', '{}', '{}', '{}', '{}',
				'{}', '{}', '{}', '{}', '{}', '{}', '{}',
				'[0:1]={5,6}', '{{{x}}}', '{}', '{}', '{}', '1582-10-04'`,
			`'(1e300,-1e-300)', 'ä:1 ß', 'a', 1, B'1010101010101010101010101010101010101010101010101010101010101010101010', B'0', B'0', ' ', '979-10-90636-07-1',
				' padded ', repeat('v', 300), '<?xml version="1.0"?><x>ü</x>',
				'{23:59:59.999999}', '{00:00:00.0005}', '{23:59:59.999999+14}', '{"1970-01-01 00:00:00.0005"}', '{infinity,-infinity}',
				'{1}', '{"\""}', '{" "}', '{0.0.0.0/0}', '{::/0}', '{ff:ff:ff:ff:ff:ff}', '{ff:ff:ff:ff:ff:ff:ff:ff}',
				'{"(,)"}', '{"(,5]"}', '{"[-1.5,)"}', '{empty}', '{"(,)"}', '{"[2024-01-01,2024-01-01]"}',
				'{0.01}', '{3.4028235e38,1e-45}', '{"[]"}', '{""}', '{""}', '{""}', '{""}',
				'{{1},{NULL}}', '{{"{","}"}}', NULL, NULL, NULL, '0044-03-15 BC'`,
			`'(NaN,Infinity)', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
				NULL, NULL, NULL,
				NULL, NULL, NULL, NULL, NULL,
				NULL, NULL, NULL, NULL, NULL, NULL, NULL,
				NULL, NULL, NULL, NULL, NULL, NULL,
				NULL, NULL, NULL, NULL, NULL, NULL, NULL,
				NULL, NULL, NULL, NULL, NULL, NULL`,
		},
	}

	// vectorTypes: pgvector's types, through fakeVectorTypes.
	vectorTypes = typeTable{
		name:  "vectors",
		setup: append(append([]string(nil), fakeVectorTypes...), `CREATE TABLE public.vectors (id int PRIMARY KEY, v vector, hv halfvec, sv sparsevec)`),
		rows: []string{
			`'[1,2.5,-3]', '[1.5,-0.25]', '{1:1.5,3:-2,5:4}/5'`,
			`NULL, NULL, NULL`,
			`'[0]', '[65504]', '{}/3'`,
			`'[1e-45,3.4028235e38,1.7976931348623157e308]', '[0.0001]', '{1:1,2:2,3:3,4:4,5:5,6:6,7:7,8:8,9:9,10:10,11:11,12:12,13:13,17:17,33:33,100:1e10}/1000'`,
		},
		// a vector stored out of line, unchanged by an update (Debezium: null)
		script: func(e *env) {
			e.exec(`ALTER TABLE public.vectors ALTER COLUMN v SET STORAGE EXTERNAL`)
			var v strings.Builder
			for i := 1; i <= 600; i++ {
				fmt.Fprintf(&v, ",%d.%d", i*7919%100000, i%10)
			}
			e.exec(`INSERT INTO public.vectors (id, v, hv) VALUES (201, '[` + v.String()[1:] + `]', '[1]')`)
			e.exec(`UPDATE public.vectors SET hv = '[2]' WHERE id = 201`)
		},
	}

	// geoTypes: PostGIS geometry and geography, and arrays of them.
	geoTypes = typeTable{
		name: "geo",
		setup: []string{
			`CREATE EXTENSION IF NOT EXISTS postgis`,
			`CREATE TABLE public.geo (id int PRIMARY KEY, g geometry, gp geometry(Point,4326), gg geography, ga geometry[], gga geography[])`,
		},
		rows: []string{
			`'POINT(1 2)', 'SRID=4326;POINT(3.5 -4.25)', 'POINT(13.4 52.5)', ARRAY['POINT(1 2)'::geometry, 'SRID=3857;LINESTRING(0 0,1 1)'::geometry], ARRAY['POINT(1 2)'::geography]`,
			`NULL, NULL, NULL, NULL, NULL`,
			`'POLYGON((0 0,4 0,4 4,0 4,0 0),(1 1,2 1,2 2,1 2,1 1))', 'SRID=4326;POINT EMPTY', 'SRID=4326;LINESTRING(0 0,10 10)', '{}', '{}'`,
			`'GEOMETRYCOLLECTION(POINT(1 2),LINESTRING(1 2,3 4))', NULL, 'MULTIPOINT((0 0),(1 1))', ARRAY[NULL::geometry], NULL`,
			`'POINT Z (1 2 3)', NULL, NULL, NULL, NULL`,
		},
		// a geometry stored out of line, unchanged by an update (Debezium: null)
		script: func(e *env) {
			e.exec(`ALTER TABLE public.geo ALTER COLUMN g SET STORAGE EXTERNAL`)
			e.exec(`INSERT INTO public.geo (id, g) VALUES (201, (SELECT ST_MakeLine(array_agg(ST_MakePoint(g, hashtext(g::text)) ORDER BY g)) FROM generate_series(1, 200) g))`)
			e.exec(`UPDATE public.geo SET gp = 'SRID=4326;POINT(0 0)' WHERE id = 201`)
		},
	}

	// unknownTypesTable: types Debezium has no mapping for (include.unknown.datatypes), and arrays it
	// drops whatever that option says.
	unknownTypesTable = typeTable{
		name:   "unknowntypes",
		unknwn: true,
		setup: []string{
			`CREATE TABLE public.unknowntypes (id int PRIMARY KEY,
				bx box, ci circle, li line, ls lseg, pa path, po polygon, mr int4multirange, lsn pg_lsn,
				tq tsquery, ts txid_snapshot, rc regclass, xi xid, bxa box[],
				amo money[], ana name[], aiv interval[], avb varbit[], axm xml[], apt point[])`,
		},
		rows: []string{
			`'((1,2),(3,4))', '<(1,2),3>', '{1,2,3}', '[(1,2),(3,4)]', '((1,2),(3,4))', '((1,2),(3,4),(5,6))', '{[1,3),[5,7)}', '16/B374D848',
				'fat & rat', '10:20:10,14,15', 'pg_class', '12345', '{"(1,2),(3,4)"}',
				'{1.50,-2}', '{a,b}', '{"1 day",NULL}', '{101,1}', '{<a/>}', '{"(1,2)"}'`,
			`NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
				NULL, NULL, NULL, NULL, NULL,
				NULL, NULL, NULL, NULL, NULL, NULL`,
		},
	}

	// namesTable: a table and columns whose names Kafka topics, Avro schema names and Avro field
	// names do not allow as they are.
	namesTable = typeTable{
		name: "Line Items",
		setup: []string{
			`CREATE TABLE public."Line Items" (id int, "Item Id" int, "1st" text, "naïve" int, "a.b" text, "_under" text, "x-y" text, "Ā" int, PRIMARY KEY (id, "Item Id"))`,
		},
		rows: []string{`7, 'first', 2, 'ab', 'u', 'xy', 3`, `8, NULL, NULL, NULL, NULL, NULL, NULL`},
		// a key change (delete and create with the old and new key in headers), an update, a delete
		script: func(e *env) {
			e.exec(`UPDATE public."Line Items" SET "Item Id" = 9 WHERE id = 101`)
			e.exec(`UPDATE public."Line Items" SET "1st" = 'second', "naïve" = 5 WHERE id = 102`)
			e.exec(`DELETE FROM public."Line Items" WHERE id = 102`)
		},
	}

	// generatedTable: a stored generated column (snapshot records have it; streamed ones do not,
	// as pgoutput does not send it).
	generatedTable = typeTable{
		name:  "gen",
		setup: []string{`CREATE TABLE public.gen (id int PRIMARY KEY, a int, g int GENERATED ALWAYS AS (a * 2) STORED, b text)`},
		cols:  "a, b",
		rows:  []string{`1, 'x'`, `NULL, NULL`},
		script: func(e *env) {
			e.exec(`UPDATE public.gen SET a = 5 WHERE id = 101`)
			e.exec(`DELETE FROM public.gen WHERE id = 102`)
		},
	}
)

// toastTable has a column of every TOASTable type Debezium maps, stored out of line without
// compression (STORAGE EXTERNAL) once a row is larger than about 2 kB; its script inserts a row
// of 2-3 kB values and then updates another column, so that pgoutput sends each of them as an
// unchanged TOAST value ('u') and the placeholder Debezium writes for each type shows.
var toastTable = typeTable{
	name: "toasty",
	setup: []string{
		`CREATE EXTENSION IF NOT EXISTS hstore`, `CREATE EXTENSION IF NOT EXISTS ltree`,
		`CREATE TABLE public.toasty (id int PRIMARY KEY, i int, t text, b bytea, j jsonb, js json, x xml,
			ai int4[], ai8 int8[], ai2 int2[], ad date[], at text[], avc varchar[], aj jsonb[], ab bytea[], au uuid[], an numeric[],
			hs hstore, tv tsvector, vb varbit, n numeric, lt ltree, ats timestamptz[])`,
		`DO $$ DECLARE c text; BEGIN
			FOR c IN SELECT attname FROM pg_attribute WHERE attrelid = 'public.toasty'::regclass AND attnum > 2 LOOP
				EXECUTE format('ALTER TABLE public.toasty ALTER COLUMN %I SET STORAGE EXTERNAL', c);
			END LOOP; END $$`,
	},
	script: func(e *env) {
		e.exec(toastValues(201))
		e.exec(`UPDATE public.toasty SET i = 1 WHERE id = 201`)
		e.exec(`DELETE FROM public.toasty WHERE id = 201`)
	},
}

// toastValues is the INSERT of one row of 2-3 kB pseudo-random values into toasty.
func toastValues(id int) string {
	md5s := func(n int) string {
		return fmt.Sprintf("(SELECT string_agg(md5(g::text || '%d'), '') FROM generate_series(1, %d) g)", id, n)
	}
	series := func(expr string, n int) string {
		return fmt.Sprintf("(SELECT array_agg(%s) FROM generate_series(1, %d) g)", expr, n)
	}
	return fmt.Sprintf(`INSERT INTO public.toasty VALUES (%d, 0, %s, convert_to(%s, 'UTF8'), jsonb_build_object('k', %s), json_build_object('k', %s), ('<x>' || %s || '</x>')::xml,
		%s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
		(SELECT hstore(array_agg(md5(g::text)), array_agg(md5((g + 1)::text))) FROM generate_series(1, 35) g),
		(SELECT string_agg(md5(g::text), ' ')::tsvector FROM generate_series(1, 70) g),
		(SELECT string_agg(CASE WHEN hashtext(g::text) & 1 = 0 THEN '0' ELSE '1' END, '') FROM generate_series(1, 20000) g)::varbit,
		(SELECT string_agg(lpad((abs(hashtext(g::text)) %% 10000)::text, 4, '0'), '') FROM generate_series(1, 1200) g)::numeric,
		(SELECT string_agg('l' || md5(g::text), '.') FROM generate_series(1, 70) g)::ltree,
		%s)`, id, md5s(70), md5s(70), md5s(70), md5s(70), md5s(70),
		series("hashtext(g::text)", 600), series("hashtext(g::text)::int8 * 1000003", 300), series("(hashtext(g::text) % 32000)::int2", 1200),
		series("date '2000-01-01' + (hashtext(g::text) % 10000)", 600), series("md5(g::text)", 70), series("md5(g::text)", 70),
		series("jsonb_build_object('k', md5(g::text))", 50), series("decode(md5(g::text), 'hex')", 140), series("md5(g::text)::uuid", 140),
		series("hashtext(g::text)::numeric / 7", 300), series("timestamptz '2000-01-01 00:00:00+00' + hashtext(g::text) * interval '1 second'", 300))
}
