package dbzopt

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// KeyColumns is a parsed message.key.columns: for each configured column, a pattern over
// "<schema>.<table>.<column>" (the table part is a regular expression, the column a name or
// expression), in the order written.
type KeyColumns struct {
	patterns []*regexp.Regexp
}

var keyColumnsEntry = regexp.MustCompile(`^\s*([^:]+):([^:,]+(,[^:,]+)*)\s*$`)

// ParseKeyColumns parses Debezium's message.key.columns:
// "<fully-qualified table regex>:<column>[,<column>...][;...]", e.g.
// "public.orders:customer_id,order_no;public\.events_.*:id". An empty string configures nothing.
func ParseKeyColumns(s string) (*KeyColumns, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	k := &KeyColumns{}
	for _, entry := range strings.Split(s, ";") {
		if !keyColumnsEntry.MatchString(entry) {
			return nil, fmt.Errorf("%q has an invalid format (expecting '<schema>.<table>:<column>[,<column>...]', entries separated by ';')", entry)
		}
		table, cols, _ := strings.Cut(entry, ":")
		for _, c := range strings.Split(cols, ",") {
			// Debezium joins "<table>.<column>" and reads it as a regular expression list.
			for _, p := range SplitList(table + "." + strings.TrimSpace(c)) {
				re, err := compileWhole(p)
				if err != nil {
					return nil, fmt.Errorf("%q: %w", entry, err)
				}
				k.patterns = append(k.patterns, re)
			}
		}
	}
	return k, nil
}

// Columns returns the indexes of the key columns of table schema.table among columns, in the
// order Debezium takes them (for each configured column, the table's matching columns in table
// order), or nil when none is configured for the table (its own key then applies).
func (k *KeyColumns) Columns(schema, table string, columns []string) []int {
	if k == nil {
		return nil
	}
	var out []int
	prefix := schema + "." + table + "."
	for _, re := range k.patterns {
		for i, c := range columns {
			// A column matched twice is taken once (Debezium would fail on the duplicate field).
			if re.MatchString(prefix+c) && !slices.Contains(out, i) {
				out = append(out, i)
			}
		}
	}
	return out
}
