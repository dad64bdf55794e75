package dbzopt

import (
	"fmt"
	"slices"
	"strings"
)

// ParseSkippedOperations parses skipped.operations: comma-separated operation codes c (create),
// u (update), d (delete), t (truncate), or "none" alone for none. It returns the set of skipped
// codes.
func ParseSkippedOperations(s string) (map[byte]bool, error) {
	out := map[byte]bool{}
	list := strings.Split(s, ",")
	for _, it := range list {
		it = strings.TrimSpace(it)
		switch it {
		case "c", "u", "d", "t":
			out[it[0]] = true
		case "none":
			if len(list) > 1 {
				return nil, fmt.Errorf("none cannot be combined with other operations")
			}
		default:
			return nil, fmt.Errorf("unknown operation %q (allowed: c, u, d, t, or none)", it)
		}
	}
	return out, nil
}

// DeleteHandling is ExtractNewRecordState's delete.tombstone.handling.mode.
type DeleteHandling string

// The modes of delete.tombstone.handling.mode.
const (
	DeleteDrop                 DeleteHandling = "drop"                   // deletes and tombstones dropped
	DeleteTombstone            DeleteHandling = "tombstone"              // a delete becomes a record without a row (the default)
	DeleteRewrite              DeleteHandling = "rewrite"                // a delete becomes its before row with __deleted "true"; tombstones dropped
	DeleteRewriteWithTombstone DeleteHandling = "rewrite-with-tombstone" // rewrite, tombstones kept
	DeleteToTombstone          DeleteHandling = "delete-to-tombstone"    // a delete becomes a tombstone; tombstones dropped
)

// ParseDeleteHandling parses a mode case-insensitively; "" is the default, tombstone.
func ParseDeleteHandling(s string) (DeleteHandling, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch DeleteHandling(s) {
	case "":
		return DeleteTombstone, nil
	case DeleteDrop, DeleteTombstone, DeleteRewrite, DeleteRewriteWithTombstone, DeleteToTombstone:
		return DeleteHandling(s), nil
	}
	return "", fmt.Errorf("unknown mode %q (drop, tombstone, rewrite, rewrite-with-tombstone or delete-to-tombstone)", s)
}

// Rewrites reports whether the mode adds the __deleted field.
func (d DeleteHandling) Rewrites() bool {
	return d == DeleteRewrite || d == DeleteRewriteWithTombstone
}

// FieldRef is one entry of ExtractNewRecordState's add.fields or add.headers: a field of the
// change event envelope ("op", "ts_ms"), of its source block ("lsn", "source.ts_ms") or of its
// transaction block ("transaction.id"), and the name it gets.
type FieldRef struct {
	Struct string // "" (the envelope), "source" or "transaction"
	Field  string
	Name   string // the new field or header name, prefix included
}

// ParseFieldRefs parses add.fields / add.headers entries as Debezium's FieldReference does:
// "field" (a simple name: op, ts_ms, ts_us, ts_ns are the envelope's; id, total_order,
// data_collection_order the transaction block's; anything else the source block's) becomes
// prefix+field; "struct.field" becomes prefix+struct+"_"+field; ":new" renames to prefix+new.
func ParseFieldRefs(prefix string, list []string) ([]FieldRef, error) {
	var out []FieldRef
	for _, it := range list {
		it = strings.TrimSpace(it)
		if it == "" {
			continue
		}
		parts := strings.Split(it, ":")
		if len(parts) > 2 {
			return nil, fmt.Errorf("unexpected field name %q", it)
		}
		var r FieldRef
		ref := parts[0]
		if st, f, ok := strings.Cut(ref, "."); ok {
			if i := strings.IndexByte(f, '.'); i >= 0 {
				f = f[:i] // Debezium reads only the first two parts
			}
			r.Struct, r.Field = st, f
		} else {
			r.Field = ref
			r.Struct = simpleFieldStruct(ref)
		}
		switch {
		case len(parts) == 2:
			r.Name = prefix + parts[1]
		case r.Struct != "" && strings.Contains(ref, "."):
			r.Name = prefix + r.Struct + "_" + r.Field
		default:
			r.Name = prefix + r.Field
		}
		out = append(out, r)
	}
	return out, nil
}

// simpleFieldStruct is FieldReference.determineStruct.
func simpleFieldStruct(f string) string {
	switch f {
	case "id", "total_order", "data_collection_order":
		return "transaction"
	case "op", "ts_ms", "ts_us", "ts_ns":
		return ""
	}
	return "source"
}

// KnownFields says which fields add.fields and add.headers can name.
const KnownFields = "the envelope's op, ts_ms, ts_us, ts_ns; source's version, connector, name, ts_ms, snapshot, db, sequence, ts_us, ts_ns, schema, table, txId, lsn, xmin, origin, origin_lsn; transaction's id, total_order, data_collection_order"

// KnownField reports whether a PostgreSQL change event has the field (struct "", "source" or
// "transaction").
func KnownField(st, field string) bool {
	var names []string
	switch st {
	case "":
		names = []string{"op", "ts_ms", "ts_us", "ts_ns"}
	case "source":
		names = []string{"version", "connector", "name", "ts_ms", "snapshot", "db", "sequence", "ts_us", "ts_ns", "schema", "table", "txId", "lsn", "xmin", "origin", "origin_lsn"}
	case "transaction":
		names = []string{"id", "total_order", "data_collection_order"}
	}
	return slices.Contains(names, field)
}
