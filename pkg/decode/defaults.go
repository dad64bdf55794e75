package decode

import "strings"

// columnDefault turns a column default expression (pg_get_expr) into the default value Debezium
// 3.6 puts into the column's schema, in PostgreSQL text output form for the event encoder.
// Debezium (PostgresDefaultValueConverter) does not evaluate expressions: it parses the literal of
// "'<literal>'::<type>" or a bare constant for the built-in types it has a mapper for (and enums),
// uses a fixed placeholder for generated values such as now() or nextval(...), and has no default
// for other types or for domains; a NULL default is no default. has=false means no "default".
func columnDefault(typeName string, isEnum bool, expr string) (val []byte, has bool) {
	expr = strings.TrimSpace(expr)
	if expr == "" || expr == "NULL" || strings.HasPrefix(expr, "NULL::") {
		return nil, false
	}
	if strings.HasPrefix(typeName, "_") {
		return nil, false // arrays: no mapper
	}
	// A function call (now(), nextval('seq'::regclass), ...) is a generated value.
	generated := !strings.HasPrefix(expr, "'") && strings.Contains(expr, "(")
	lit, _ := extractDefault(expr)
	if isEnum {
		if generated {
			return nil, false
		}
		return []byte(lit), true
	}
	placeholder, ok := defaultPlaceholders[typeName]
	if !ok {
		return nil, false
	}
	if generated {
		if placeholder == "" {
			return nil, false
		}
		return []byte(placeholder), true
	}
	return []byte(lit), true
}

// extractDefault returns the literal of "'lit'::type" (quoted=true) or the bare expression.
func extractDefault(expr string) (string, bool) {
	if i := strings.IndexByte(expr, '\''); i >= 0 {
		if j := strings.LastIndexByte(expr, '\''); j > i {
			return strings.ReplaceAll(expr[i+1:j], "''", "'"), true
		}
	}
	// "(expr)::type" or "value::type"
	if i := strings.Index(expr, "::"); i > 0 && !strings.ContainsAny(expr[:i], "()") {
		return expr[:i], false
	}
	return expr, false
}

// defaultPlaceholders lists the types Debezium has a default value mapper for, with the value it
// uses for a generated default (PostgreSQL text form; "" = none).
var defaultPlaceholders = map[string]string{
	"bool": "", "bit": "", "varbit": "", "bpchar": "", "varchar": "", "text": "",
	"numeric": "0", "float4": "0", "float8": "0",
	"int2": "0", "int4": "0", "int8": "0",
	"json": "{}", "jsonb": "{}", "xml": "", "uuid": "00000000-0000-0000-0000-000000000000",
	"date": "1970-01-01", "time": "00:00:00", "timestamp": "1970-01-01 00:00:00",
	"timestamptz": "1970-01-01 00:00:00+00", "interval": "",
}
