package connector_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgcdc/pgcdc/pkg/event"
)

// With events.unknown_types: error (the default), a column of a type Debezium has no mapping for
// stops pgcdc with an error naming the table, the column, the type and the setting that lets it
// through; nothing from that transaction on is confirmed, so a restart stops at it again, and once
// the setting allows it the change is delivered: nothing was skipped.
func TestUnknownTypeStopsWithoutConfirming(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE ok (id int PRIMARY KEY)`)
	e.exec(`CREATE TABLE shapes (id int PRIMARY KEY, b box)`)
	p := e.start(nil)
	p.waitStreaming()
	e.exec(`INSERT INTO ok VALUES (1)`)
	e.read("ok", 1, 30*time.Second)
	before := e.queryLSN(`SELECT pg_current_wal_lsn()::text`)
	e.exec(`INSERT INTO shapes VALUES (1, '((1,2),(3,4))')`)
	e.exec(`INSERT INTO ok VALUES (2)`) // after the bad change: must not be confirmed either

	wantErr := func(p *proc) {
		t.Helper()
		if code, _ := p.wait(60 * time.Second); code == 0 {
			t.Fatalf("pgcdc exited 0 on a column of an unmapped type:\n%s", tail(p.out.String(), 3000))
		}
		out := strings.ReplaceAll(p.out.String(), `\"`, `"`) // the JSON log escapes quotes
		for _, want := range []string{`public.shapes column "b"`, `type "box"`, `events.unknown_types: text`} {
			if !strings.Contains(out, want) {
				t.Fatalf("the error does not name %s:\n%s", want, tail(out, 3000))
			}
		}
		if c := e.confirmedFlush(); c > before {
			t.Fatalf("slot confirmed at %s, past the unmapped change (WAL was at %s before it)", fmtLSN(c), fmtLSN(before))
		}
	}
	wantErr(p)
	wantErr(e.start(nil)) // the same error again: the change was not skipped

	p = e.start(map[string]string{"PGCDC_EVENTS_UNKNOWN_TYPES": "text"})
	p.waitStreaming()
	got := e.read("shapes", 1, 30*time.Second)
	if b := got[0].After["b"]; b != "(3,4),(1,2)" {
		t.Fatalf("with unknown_types text: b = %v, want PostgreSQL's text of the box", b)
	}
	e.read("ok", 2, 30*time.Second)
	p.stop()
}

// No column type can stop pgcdc with unknown_types: text: every type of the catalog (and its
// array type) gets an encoder; with error, the types that fail are reported with table, column,
// type and the setting.
func TestEveryCatalogTypeEncodes(t *testing.T) {
	e := newEnv(t, nil, nil)
	for _, ext := range []string{"hstore", "citext", "ltree", "isn"} {
		e.exec(`CREATE EXTENSION IF NOT EXISTS ` + ext)
	}
	rows, err := e.db.Query(context.Background(), `
		SELECT t.oid::int8, t.typname::text, coalesce(a.typname::text, '')
		FROM pg_type t LEFT JOIN pg_type a ON a.oid = t.typarray
		WHERE t.typtype IN ('b', 'c', 'd', 'e', 'r', 'm') AND t.typisdefined AND t.typcategory <> 'A'`)
	if err != nil {
		t.Fatal(err)
	}
	var cols []event.Column
	for rows.Next() {
		var oid int64
		var name, arr string
		if err := rows.Scan(&oid, &name, &arr); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, event.Column{Name: "c_" + name, TypeOID: uint32(oid), TypeName: name, TypeMod: -1, Optional: true})
		if arr != "" {
			cols = append(cols, event.Column{Name: "c_" + arr, TypeName: arr, TypeMod: -1, Optional: true})
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(cols) < 200 {
		t.Fatalf("only %d types in the catalog query", len(cols))
	}
	opts := event.DefaultOptions("p", "db", "v")
	opts.UnknownTypesAsText = true
	if _, err := event.NewEncoder(opts, event.Table{Schema: "public", Name: "all", Columns: cols}); err != nil {
		t.Fatalf("with unknown_types text a column type stopped the encoder: %v", err)
	}
	opts.UnknownTypesAsText = false
	unknown := 0
	for _, c := range cols {
		_, err := event.NewEncoder(opts, event.Table{Schema: "public", Name: "t", Columns: []event.Column{c}})
		if err == nil {
			continue
		}
		unknown++
		if msg := err.Error(); !strings.Contains(msg, `public.t column "`+c.Name+`"`) || !strings.Contains(msg, `"`+c.TypeName+`"`) || !strings.Contains(msg, "events.unknown_types: text") {
			t.Errorf("%s: the error must name table, column, type and events.unknown_types: %v", c.TypeName, err)
		}
	}
	t.Logf("%d column types, %d of them without a Debezium mapping", len(cols), unknown)
}
