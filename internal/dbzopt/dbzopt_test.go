package dbzopt

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplitList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"a", []string{"a"}},
		{" public.a , public.b ,,", []string{"public.a", "public.b"}},
		{`x{1\,3},y`, []string{"x{1,3}", "y"}},
		{`a\.b,c`, []string{`a\.b`, "c"}},
	} {
		if got := SplitList(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SplitList(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPatternsWholeNameCaseInsensitive(t *testing.T) {
	ps, err := CompilePatterns(SplitList(`public\.users\.e.*, PUBLIC.ORDERS.ID`))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"public.users.email":  true,
		"Public.Users.EMAIL":  true,
		"public.orders.id":    true,
		"public.orders.id2":   false, // whole name
		"xpublic.users.email": false,
		"public.users":        false,
	} {
		if got := ps.Match(name); got != want {
			t.Errorf("Match(%q) = %v, want %v", name, got, want)
		}
	}
	if _, err := CompilePatterns([]string{"a(?=b)"}); err == nil || !strings.Contains(err.Error(), `"a(?=b)"`) {
		t.Errorf("look-ahead: got %v, want an error naming the expression", err)
	}
}

func TestJavaReplacement(t *testing.T) {
	for _, tc := range []struct {
		regex, repl, in, want string
		matches               bool
	}{
		{`(.*)\.public\.(.*)`, `$1.all.$2`, "app.public.items", "app.all.items", true},
		{`(.*)\.public\.(.*)`, `$1_x`, "app.public.items", "app_x", true}, // Go's Expand would read group "1_x"
		{`(.*)\.public\.(.*)`, `$12`, "app.public.items", "app2", true},   // no group 12: group 1 then "2"
		{`(?P<db>[^.]+)\.(.*)`, `${db}-$2`, "app.public.items", "app-public.items", true},
		{`(.*)`, `\$1 \\ $1`, "x", `$1 \ x`, true},
		{`a(b)?c`, `[$1]`, "ac", "[]", true}, // a group that took no part adds nothing
		{`app\.public\.(.*)`, `$1`, "other.public.items", "other.public.items", false},
		{`app\.public\.(.*)`, `$1`, "app.public.items.x", "items.x", true},
	} {
		w, err := NewRewrite(tc.regex, tc.repl)
		if err != nil {
			t.Fatalf("%s / %s: %v", tc.regex, tc.repl, err)
		}
		got, ok := w.Apply(tc.in)
		if got != tc.want || ok != tc.matches {
			t.Errorf("%s → %s on %q = %q,%v; want %q,%v", tc.regex, tc.repl, tc.in, got, ok, tc.want, tc.matches)
		}
	}
	for _, bad := range []struct{ regex, repl string }{
		{`(.*)`, `$`}, {`(.*)`, `$x`}, {`(.*)`, `$2`}, {`(.*)`, `${nope}`}, {`(.*)`, `trailing\`}, {`(.*`, `$1`},
	} {
		if _, err := NewRewrite(bad.regex, bad.repl); err == nil {
			t.Errorf("NewRewrite(%q, %q): no error", bad.regex, bad.repl)
		}
	}
}

func TestKeyColumns(t *testing.T) {
	k, err := ParseKeyColumns(`public.orders:customer_id, order_no; public\.ev_[^.]*:ID`)
	if err != nil {
		t.Fatal(err)
	}
	cols := []string{"id", "order_no", "customer_id", "note"}
	if got := k.Columns("public", "orders", cols); !reflect.DeepEqual(got, []int{2, 1}) {
		t.Errorf("orders: %v, want [2 1] (the configured order)", got)
	}
	if got := k.Columns("public", "ev_1", cols); !reflect.DeepEqual(got, []int{0}) {
		t.Errorf("ev_1: %v, want [0] (case-insensitive)", got)
	}
	if got := k.Columns("public", "other", cols); got != nil {
		t.Errorf("other: %v, want nil (its own key)", got)
	}
	for _, bad := range []string{"public.orders", "public.orders:", ":a", "a:b:c"} {
		if _, err := ParseKeyColumns(bad); err == nil {
			t.Errorf("ParseKeyColumns(%q): no error", bad)
		}
	}
	if k, err := ParseKeyColumns(" "); k != nil || err != nil {
		t.Errorf("empty: %v, %v", k, err)
	}
}

func TestParseMappers(t *testing.T) {
	rules, err := ParseMappers(map[string]string{
		"column.mask.hash.v2.MD5.with.salt.x.y": "public.t.c",
		"column.mask.hash.SHA-256.with.salt.s":  "public.t.b",
		"column.mask.with.5.chars":              "public.t.a, public.t.z",
		"column.truncate.to.3.chars":            "public.t.d",
	})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []MapperKind
	for _, r := range rules {
		kinds = append(kinds, r.Kind)
	}
	if !reflect.DeepEqual(kinds, []MapperKind{MapTruncate, MapMask, MapHash, MapHashV2}) {
		t.Errorf("order %v", kinds)
	}
	if r := rules[3]; r.Algorithm != "MD5" || r.Salt != "x.y" || r.NewHash == nil {
		t.Errorf("v2 rule %+v", r)
	}
	if r := rules[2]; r.Algorithm != "SHA-256" || r.Salt != "s" {
		t.Errorf("hash rule %+v", r)
	}
	if rules[1].N != 5 || len(rules[1].Columns) != 2 || rules[0].N != 3 {
		t.Errorf("rules %+v", rules)
	}
	for _, bad := range []map[string]string{
		{"column.mask.with.x.chars": "a.b.c"},
		{"column.mask.hash.FOO.with.salt.s": "a.b.c"},
		{"column.blur.with.3.chars": "a.b.c"},
		{"column.mask.with.3.chars": ""},
		{"column.mask.with.3.chars": "a(?!b)"},
	} {
		if _, err := ParseMappers(bad); err == nil {
			t.Errorf("ParseMappers(%v): no error", bad)
		}
	}
}

func TestFieldRefs(t *testing.T) {
	refs, err := ParseFieldRefs("__", []string{"op", "table", "lsn", "source.ts_ms", "ts_ms", "id", "transaction.total_order", "db:DATABASE"})
	if err != nil {
		t.Fatal(err)
	}
	want := []FieldRef{
		{"", "op", "__op"}, {"source", "table", "__table"}, {"source", "lsn", "__lsn"}, {"source", "ts_ms", "__source_ts_ms"},
		{"", "ts_ms", "__ts_ms"}, {"transaction", "id", "__id"}, {"transaction", "total_order", "__transaction_total_order"},
		{"source", "db", "__DATABASE"},
	}
	if !reflect.DeepEqual(refs, want) {
		t.Errorf("got  %+v\nwant %+v", refs, want)
	}
	if _, err := ParseFieldRefs("__", []string{"a:b:c"}); err == nil {
		t.Error("a:b:c: no error")
	}
}

func TestSkippedAndDeleteModes(t *testing.T) {
	if s, err := ParseSkippedOperations("c, t"); err != nil || !s['c'] || !s['t'] || s['u'] {
		t.Errorf("c,t: %v %v", s, err)
	}
	if s, err := ParseSkippedOperations("none"); err != nil || len(s) != 0 {
		t.Errorf("none: %v %v", s, err)
	}
	for _, bad := range []string{"r", "none,c", "x", ""} {
		if _, err := ParseSkippedOperations(bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
	if m, err := ParseDeleteHandling(" Rewrite-With-Tombstone "); err != nil || m != DeleteRewriteWithTombstone || !m.Rewrites() {
		t.Errorf("got %q %v", m, err)
	}
	if m, _ := ParseDeleteHandling(""); m != DeleteTombstone {
		t.Errorf("default %q", m)
	}
	if _, err := ParseDeleteHandling("delete"); err == nil {
		t.Error("delete: no error")
	}
}
