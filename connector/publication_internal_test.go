package connector

import (
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
