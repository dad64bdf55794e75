package pgsource

import (
	"strings"
	"testing"
)

func TestIdentityProblem(t *testing.T) {
	const addKey = "add a primary key"
	const setDefault = `ALTER TABLE "public"."t" REPLICA IDENTITY DEFAULT`
	cases := []struct {
		identity       byte
		hasKey, hasIdx bool
		ok             bool
		want           []string // in the message when not ok
		notWant        []string
	}{
		// DEFAULT uses the primary key: fine with one, nothing to identify rows without.
		{'d', true, false, true, nil, nil},
		{'d', false, false, false, []string{"no primary key", "REPLICA IDENTITY DEFAULT", addKey, `ALTER TABLE "public"."t" REPLICA IDENTITY FULL`}, nil},
		// FULL always works.
		{'f', false, false, true, nil, nil},
		{'f', true, false, true, nil, nil},
		// USING INDEX works while its index exists; once it is dropped it behaves as NOTHING.
		{'i', false, true, true, nil, nil},
		{'i', true, true, true, nil, nil},
		{'i', false, false, false, []string{"no primary key", "USING INDEX (index missing)", addKey}, nil},
		{'i', true, false, false, []string{"USING INDEX (index missing)", "although it has a primary key", setDefault}, []string{"no primary key", addKey}},
		// NOTHING never works, primary key or not.
		{'n', false, false, false, []string{"no primary key", "REPLICA IDENTITY NOTHING", addKey}, nil},
		{'n', true, false, false, []string{"REPLICA IDENTITY NOTHING", "although it has a primary key", setDefault}, []string{"no primary key", addKey}},
	}
	for _, c := range cases {
		tb := Table{Schema: "public", Name: "t", Identity: c.identity, HasKey: c.hasKey, HasIdentIdx: c.hasIdx}
		got := tb.IdentityProblem()
		name := string(c.identity)
		if c.hasKey {
			name += "+pk"
		}
		if c.hasIdx {
			name += "+idx"
		}
		if c.ok {
			if got != "" {
				t.Errorf("%s: unexpected problem: %s", name, got)
			}
			continue
		}
		if got == "" {
			t.Errorf("%s: no problem reported", name)
			continue
		}
		for _, w := range append([]string{"table public.t", "UPDATE and DELETE", "tables.exclude"}, c.want...) {
			if !strings.Contains(got, w) {
				t.Errorf("%s: message lacks %q:\n%s", name, w, got)
			}
		}
		for _, w := range c.notWant {
			if strings.Contains(got, w) {
				t.Errorf("%s: message contains %q:\n%s", name, w, got)
			}
		}
	}
}

func TestIdentityProblemQuotesTableName(t *testing.T) {
	got := Table{Schema: "My Schema", Name: `we"ird`, Identity: 'd'}.IdentityProblem()
	if !strings.Contains(got, `ALTER TABLE "My Schema"."we""ird" REPLICA IDENTITY FULL`) {
		t.Errorf("fix does not quote the name:\n%s", got)
	}
}

func TestIdentList(t *testing.T) {
	cases := []struct {
		tables []Table
		want   string
	}{
		{nil, ""},
		{[]Table{{Schema: "public", Name: "orders"}}, `"public"."orders"`},
		{[]Table{{Schema: "public", Name: "orders"}, {Schema: "sales", Name: "Line Items"}}, `"public"."orders", "sales"."Line Items"`},
		{[]Table{{Schema: "s", Name: `a"b`}}, `"s"."a""b"`},
		{[]Table{{Schema: "s", Name: "t; DROP TABLE x; --"}}, `"s"."t; DROP TABLE x; --"`},
		{[]Table{{Schema: "s", Name: "a.b"}}, `"s"."a.b"`},
		{[]Table{{Schema: "ünï", Name: "çödé"}}, `"ünï"."çödé"`},
	}
	for _, c := range cases {
		if got := identList(c.tables); got != c.want {
			t.Errorf("identList(%v) = %s, want %s", c.tables, got, c.want)
		}
	}
	if s := (Table{Schema: "a", Name: "b.c"}).String(); s != "a.b.c" {
		t.Errorf("String() = %s", s)
	}
}
