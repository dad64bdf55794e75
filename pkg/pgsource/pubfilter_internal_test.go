package pgsource

import (
	"strings"
	"testing"
)

func TestFilterSpec(t *testing.T) {
	f := NewFilters(map[string]string{"public.orders": "region = 'eu'", "s.both": "x > 1"},
		map[string][]string{"public.customers": {"id", "Name"}, "s.both": {"id", "x"}})
	cases := []struct {
		t    Table
		want string
	}{
		{Table{Schema: "public", Name: "orders"}, `"public"."orders" WHERE (region = 'eu')`},
		{Table{Schema: "public", Name: "customers"}, `"public"."customers" ("id", "Name")`},
		{Table{Schema: "s", Name: "both"}, `"s"."both" ("id", "x") WHERE (x > 1)`},
		{Table{Schema: "public", Name: "plain"}, `"public"."plain"`},
	}
	for _, c := range cases {
		if got := f.spec(c.t); got != c.want {
			t.Errorf("spec(%s) = %s, want %s", c.t, got, c.want)
		}
	}
	var none Filters
	if got := none.specList([]Table{{Schema: "a", Name: "b"}, {Schema: "c", Name: "d"}}); got != `"a"."b", "c"."d"` {
		t.Errorf("nil filters: %s", got)
	}
}

func TestFilterCheck(t *testing.T) {
	f := NewFilters(map[string]string{"public.orders": "region = 'eu'"}, nil)
	if err := f.Check(140010, Publication{Name: "p"}); err == nil || !strings.Contains(err.Error(), "need PostgreSQL 15 or newer") || !strings.Contains(err.Error(), "public.orders") {
		t.Errorf("on 14: %v", err)
	}
	if err := f.Check(150004, Publication{Name: "p", AllTables: true}); err == nil || !strings.Contains(err.Error(), "FOR ALL TABLES") {
		t.Errorf("FOR ALL TABLES: %v", err)
	}
	if err := f.Check(150004, Publication{Name: "p"}); err != nil {
		t.Errorf("on 15: %v", err)
	}
	if err := (Filters{}).Check(140010, Publication{AllTables: true}); err != nil {
		t.Errorf("no filters: %v", err)
	}
}

func TestFailoverSQL(t *testing.T) {
	if got := createFailoverSlotSQL("s1", true); got != "CREATE_REPLICATION_SLOT s1 LOGICAL pgoutput (SNAPSHOT 'export', FAILOVER true)" {
		t.Error(got)
	}
	if got := createFailoverSlotSQL("s1", false); got != "CREATE_REPLICATION_SLOT s1 LOGICAL pgoutput (SNAPSHOT 'nothing', FAILOVER true)" {
		t.Error(got)
	}
	if err := CheckFailover(ServerInfo{Version: 160004}, true); err == nil || !strings.Contains(err.Error(), "PostgreSQL 17 or newer") || !strings.Contains(err.Error(), "16.4") {
		t.Errorf("on 16: %v", err)
	}
	if err := CheckFailover(ServerInfo{Version: 160004}, false); err != nil {
		t.Error(err)
	}
	if err := CheckFailover(ServerInfo{Version: 170002}, true); err != nil {
		t.Error(err)
	}
}
