package connector

import (
	"strings"
	"testing"

	"github.com/pgcdc/pgcdc/pkg/pgsource"
)

// sameTable tells the captured table from a new one under its name: by name and OID, an unknown
// OID (0) matching any.
func TestSameTable(t *testing.T) {
	before := []pgsource.Table{{Schema: "public", Name: "a", OID: 100}, {Schema: "public", Name: "b"}}
	for _, c := range []struct {
		t    pgsource.Table
		want bool
	}{
		{pgsource.Table{Schema: "public", Name: "a", OID: 100}, true},
		{pgsource.Table{Schema: "public", Name: "a", OID: 101}, false}, // dropped and created again
		{pgsource.Table{Schema: "public", Name: "a"}, true},
		{pgsource.Table{Schema: "public", Name: "b", OID: 7}, true},
		{pgsource.Table{Schema: "public", Name: "c", OID: 100}, false}, // renamed: a new name
		{pgsource.Table{Schema: "other", Name: "a", OID: 100}, false},
	} {
		if got := sameTable(before, c.t); got != c.want {
			t.Errorf("sameTable(%s oid %d) = %v, want %v", c.t, c.t.OID, got, c.want)
		}
	}
}

// attachedLeaves lists the partitions a captured partitioned table gained since the last refresh.
func TestAttachedLeaves(t *testing.T) {
	before := []pgsource.Table{{Schema: "public", Name: "p", Leaves: []string{"public.p_eu"}}, {Schema: "public", Name: "plain"}}
	for _, c := range []struct {
		now  pgsource.Table
		want []string
	}{
		{pgsource.Table{Schema: "public", Name: "p", Leaves: []string{"public.p_eu"}}, nil},
		{pgsource.Table{Schema: "public", Name: "p", Leaves: []string{"public.p_eu", "public.p_us"}}, []string{"public.p_us"}},
		{pgsource.Table{Schema: "public", Name: "p", Leaves: []string{"public.p_us"}}, []string{"public.p_us"}}, // one detached, one attached
		{pgsource.Table{Schema: "public", Name: "plain"}, nil},
		{pgsource.Table{Schema: "public", Name: "new", Leaves: []string{"public.new_1"}}, nil}, // a new table joins whole
	} {
		var got []string
		for _, a := range attachedLeaves(before, c.now) {
			got = append(got, a.leaf.String())
			if a.root.String() != c.now.String() {
				t.Errorf("%s: root %s", c.now, a.root)
			}
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("attachedLeaves(%s %v) = %v, want %v", c.now, c.now.Leaves, got, c.want)
		}
	}
}
