package config

import (
	"fmt"
	"path"
	"strings"
)

// Matches reports whether schema.table is captured: it matches at least one
// Include pattern and no Exclude pattern. A pattern "s.t" matches when s
// matches the schema and t the table, each with path.Match (so "*" never
// crosses the dot). Matching is case-sensitive, on the names as stored in
// the catalog (unquoted identifiers are lower case). Malformed patterns
// match nothing; Validate reports them. pgcdc's own tables (SnapshotProgressTable,
// SlotPositionTable, IncrementalProgressTable) never match.
func (t TablesConfig) Matches(schema, table string) bool {
	if table == SnapshotProgressTable || table == SlotPositionTable || table == IncrementalProgressTable {
		return false
	}
	return matchAny(t.Include, schema, table) && !matchAny(t.Exclude, schema, table)
}

// IncludeIndex returns the position in Include of the first pattern schema.table matches (-1:
// none). Debezium snapshots tables in the order of table.include.list, the tables one pattern
// matches sorted by name; sorting by this index (stably, after the names) gives the same order.
func (t TablesConfig) IncludeIndex(schema, table string) int {
	for i, p := range t.Include {
		if matchAny([]string{p}, schema, table) {
			return i
		}
	}
	return -1
}

func matchAny(patterns []string, schema, table string) bool {
	// path.Match's wildcards never match '/', which may occur in quoted
	// identifiers; patterns cannot contain it, so map it to a byte they can
	// match.
	schema = strings.ReplaceAll(schema, "/", "\x00")
	table = strings.ReplaceAll(table, "/", "\x00")
	for _, p := range patterns {
		sp, tp, ok := strings.Cut(p, ".")
		if !ok {
			continue
		}
		if ms, err := path.Match(sp, schema); err != nil || !ms {
			continue
		}
		if mt, err := path.Match(tp, table); err == nil && mt {
			return true
		}
	}
	return false
}

// checkTablePattern says what is wrong with a pattern, or "" if nothing.
func checkTablePattern(p string) string {
	parts := strings.Split(p, ".")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return fmt.Sprintf("pattern %q must be schema.table with exactly one dot, each side a glob (* ? [..]), e.g. public.* or sales.order_?", p)
	}
	for _, part := range parts {
		if _, err := path.Match(part, ""); err != nil {
			return fmt.Sprintf("pattern %q is not a valid glob (path.Match syntax: * ? [abc] [a-z] [^a]): %v", p, err)
		}
		if strings.Contains(part, "/") {
			return fmt.Sprintf("pattern %q must not contain '/'", p)
		}
	}
	return ""
}

// hasWildcard reports whether an include pattern is a pattern rather than one table's name.
func hasWildcard(p string) bool { return strings.ContainsAny(p, "*?[\\") }

// UnmatchedIncludes returns the Include entries that name a single table (no wildcard) that is
// not among captured, the schema.table names of the tables Matches selected: a misspelt or
// missing table, one that Exclude removes, or a partition (only partitioned roots are listed).
// Entries with wildcards may match nothing without being a mistake. `pgcdc run` and `pgcdc check`
// warn about such entries: one rule for both.
func (t TablesConfig) UnmatchedIncludes(captured []string) []string {
	var out []string
	for _, p := range t.Include {
		if hasWildcard(p) {
			continue
		}
		found := false
		for _, name := range captured {
			if name == p {
				found = true
				break
			}
		}
		if !found {
			out = append(out, p)
		}
	}
	return out
}

// checkTableName says what is wrong with a key of tables.row_filters or tables.columns (an exact
// schema.table, no pattern), or "" if nothing.
func checkTableName(name string) string {
	schema, table, ok := strings.Cut(name, ".")
	if !ok || schema == "" || table == "" || strings.Contains(table, ".") {
		return fmt.Sprintf("%q must be schema.table with exactly one dot, e.g. public.orders", name)
	}
	if strings.ContainsAny(name, "*?[\\") {
		return fmt.Sprintf("%q must name one table, not a pattern", name)
	}
	return ""
}
