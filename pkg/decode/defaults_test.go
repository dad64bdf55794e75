package decode

import "testing"

// Each case is what Debezium 3.6.1 put into the schema for such a column in the live comparison
// (connector/compat_test.go): literals are parsed, generated values get Debezium's placeholder,
// types without a Debezium default mapper and NULL defaults get none.
func TestColumnDefault(t *testing.T) {
	cases := []struct {
		typ    string
		enum   bool
		expr   string
		want   string
		hasDef bool
	}{
		{"int4", false, "42", "42", true},
		{"int4", false, "'-1'::integer", "-1", true},
		{"int4", false, "nextval('items_seq_seq'::regclass)", "0", true},
		{"varchar", false, "'none'::character varying", "none", true},
		{"text", false, "'it''s'::text", "it's", true}, // (not in the live comparison)
		{"text", false, "'(x)'::text", "(x)", true},
		{"numeric", false, "1.5", "1.5", true},
		{"bool", false, "true", "true", true},
		{"timestamptz", false, "now()", "1970-01-01 00:00:00+00", true},
		{"timestamptz", false, "'2024-01-02 03:04:05+00'::timestamp with time zone", "2024-01-02 03:04:05+00", true},
		{"mood", true, "'ok'::mood", "ok", true},
		{"int4", false, "NULL::integer", "", false},
		{"_int4", false, "'{1}'::integer[]", "", false},
		{"point", false, "'(1,2)'::point", "", false},
		{"interval", false, "now() - now()", "", false},
	}
	for _, c := range cases {
		got, has := columnDefault(c.typ, c.enum, c.expr)
		if has != c.hasDef || string(got) != c.want {
			t.Errorf("%s DEFAULT %s: got %q (has=%v), want %q (has=%v)", c.typ, c.expr, got, has, c.want, c.hasDef)
		}
	}
}
