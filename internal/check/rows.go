package check

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/pkg/pgsource"
)

// rowScanBytes bounds the data read per table to find its largest row: a larger table (heap and
// TOAST) is sampled (TABLESAMPLE SYSTEM) down to about this much.
const rowScanBytes = 256 << 20

// rowSize is a table's largest row as a change event carries it.
type rowSize struct {
	bytes   int64   // the largest row's values as event text: text forms, bytea as base64, plus quotes
	columns int     // columns of the table (for the envelope and schema overhead)
	sampled float64 // percent of the table read; 100 when scanned whole
	full    bool    // REPLICA IDENTITY FULL: updates carry the old row too
}

// eventEstimate is about the largest change event of a row of r's size: the row (twice under
// REPLICA IDENTITY FULL, whose updates carry before and after), field names and the envelope, and
// with value schemas the schema part, which repeats every column's description for before and
// after.
func (r rowSize) eventEstimate(valueSchemas bool) int64 {
	n := r.bytes
	if r.full {
		n *= 2
	}
	n += int64(r.columns)*40 + 700
	if valueSchemas {
		n += int64(r.columns)*2*110 + 1500
	}
	return n
}

// measureRows finds each captured table's largest row (sampled on large tables), for the topic
// checks against max.message.bytes. Tables the role may not read are skipped with a note.
func measureRows(ctx context.Context, conn *pgx.Conn, tables []pgsource.Table, access map[string]tableAccess, super bool, r *Report) map[string]rowSize {
	out := map[string]rowSize{}
	var unreadable, failed []string
	for _, t := range tables {
		if !super && !access[t.String()].canSelect {
			unreadable = append(unreadable, t.String())
			continue
		}
		rs, err := measureRow(ctx, conn, t)
		if err != nil {
			if ctx.Err() != nil {
				r.add(Info, "table", "", "the largest rows were not measured within the time bound (--timeout) from %s on; their topics' max.message.bytes is compared with kafka.batch_max_bytes only", t)
				return out
			}
			failed = append(failed, fmt.Sprintf("%s (%v)", t, err))
			continue
		}
		out[t.String()] = rs
	}
	if len(unreadable) > 0 {
		r.add(Info, "table", "", "largest row not measured (no SELECT): %s", strings.Join(unreadable, ", "))
	}
	if len(failed) > 0 {
		r.add(Info, "table", "", "largest row not measured: %s", strings.Join(failed, "; "))
	}
	return out
}

const rowColumnsSQL = `
SELECT a.attname, t.typname = 'bytea' AND a.attndims = 0, c.relreplident = 'f'
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
WHERE n.nspname = $1 AND c.relname = $2
ORDER BY a.attnum`

func measureRow(ctx context.Context, conn *pgx.Conn, t pgsource.Table) (rowSize, error) {
	rows, err := conn.Query(ctx, rowColumnsSQL, t.Schema, t.Name)
	if err != nil {
		return rowSize{}, err
	}
	var terms []string
	var rs rowSize
	var size int64
	for rows.Next() {
		var name string
		var bytea bool
		if err := rows.Scan(&name, &bytea, &rs.full); err != nil {
			rows.Close()
			return rowSize{}, err
		}
		col := pgx.Identifier{name}.Sanitize()
		if bytea { // base64 in the event (binary.handling.mode bytes)
			terms = append(terms, fmt.Sprintf("coalesce((octet_length(%s) + 2) / 3 * 4 + 2, 4)", col))
		} else {
			terms = append(terms, fmt.Sprintf("coalesce(octet_length(%s::text) + 2, 4)", col))
		}
	}
	if err := rows.Err(); err != nil {
		return rowSize{}, err
	}
	rs.columns = len(terms)
	if len(terms) == 0 {
		return rs, nil
	}
	// A partitioned table's own size is 0: its partitions hold the rows.
	if err := conn.QueryRow(ctx, `SELECT coalesce(sum(pg_table_size(relid)), 0)::int8 FROM pg_partition_tree($1::regclass)`, t.Ident()).Scan(&size); err != nil {
		return rowSize{}, err
	}
	from := t.Ident()
	rs.sampled = 100
	if size > rowScanBytes {
		rs.sampled = 100 * float64(rowScanBytes) / float64(size)
		from += fmt.Sprintf(" TABLESAMPLE SYSTEM (%g)", rs.sampled)
	}
	err = conn.QueryRow(ctx, fmt.Sprintf(`SELECT coalesce(max(%s), 0)::int8 FROM %s`, strings.Join(terms, " + "), from)).Scan(&rs.bytes)
	return rs, err
}

// judgeRowSize compares a table's largest row with its topic's max.message.bytes: pgcdc stops on
// a record the topic cannot take (it never drops one), so such a row stops it when it changes.
func judgeRowSize(r *Report, topic string, t pgsource.Table, rs rowSize, maxMessage int64, valueSchemas bool, fix string) {
	est := rs.eventEstimate(valueSchemas)
	how := "scanned whole"
	if rs.sampled < 100 {
		how = fmt.Sprintf("sampled %.2g%% of the table", rs.sampled)
	}
	switch {
	case rs.bytes+batchOverhead > maxMessage:
		r.add(Fail, "topic", fix,
			"%s: max.message.bytes %d is smaller than the largest row of %s (%s as event values alone; %s): pgcdc stops when that row is snapshotted or changes", topic, maxMessage, t, BytesString(rs.bytes), how)
	case est+batchOverhead > maxMessage:
		r.add(Warn, "topic", fix,
			"%s: max.message.bytes %d may be too small for the largest row of %s: its change event is about %s (values %s, with envelope%s; %s); pgcdc stops on a record the topic cannot take",
			topic, maxMessage, t, BytesString(est), BytesString(rs.bytes), map[bool]string{true: ", schema and the old row (REPLICA IDENTITY FULL)", false: " and schema"}[rs.full], how)
	default:
		r.add(OK, "topic", "", "%s: max.message.bytes %d holds the largest row of %s (change event about %s; %s)", topic, maxMessage, t, BytesString(est), how)
	}
}

// batchOverhead is a record batch's framing, which counts against max.message.bytes.
const batchOverhead = 80
