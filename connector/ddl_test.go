package connector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// ddlRecord is one change event of the DDL tests, with its value schema's fields.
type ddlRecord struct {
	change
	fields map[string]map[string]any // after's field schemas by name
}

// readWithSchemas reads want records of table and keeps the schema of each "after" field.
func (e *env) readWithSchemas(table string, want int) []ddlRecord {
	e.t.Helper()
	var out []ddlRecord
	msgs, err := testenv.ReadTopic(context.Background(), e.brokers, e.topic(table), want, 2*time.Minute)
	if err != nil {
		e.t.Fatalf("read %s: %v", e.topic(table), err)
	}
	for i, c := range decodeChanges(e.t, msgs) {
		r := ddlRecord{change: c, fields: map[string]map[string]any{}}
		var v struct {
			Schema struct {
				Fields []struct {
					Field  string           `json:"field"`
					Fields []map[string]any `json:"fields"`
				} `json:"fields"`
			} `json:"schema"`
		}
		if msgs[i].Value != nil {
			if err := json.Unmarshal(msgs[i].Value, &v); err != nil {
				e.t.Fatal(err)
			}
		}
		for _, f := range v.Schema.Fields {
			if f.Field == "after" {
				for _, ff := range f.Fields {
					r.fields[ff["field"].(string)] = ff
				}
			}
		}
		out = append(out, r)
	}
	return out
}

// Schema changes between a change and its decoding: every value is encoded with its column as
// it was when the change was written, whether pgcdc decodes it live or after a restart that the
// DDL happened during; new, renamed, dropped and re-created tables lose no row (publication_mode
// all_tables: a table is in the publication from its CREATE).
func TestDDLValuesAsOfTheirChange(t *testing.T) {
	for _, streaming := range []bool{false, true} {
		t.Run(fmt.Sprintf("streaming=%v", streaming), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil, nil)
			e.exec(`CREATE TYPE mood AS ENUM ('happy', 'sad')`)
			e.exec(`CREATE TABLE t (id int PRIMARY KEY, amount numeric(10,2), at timestamp(0), note text, m mood)`)
			env := map[string]string{"PGCDC_POSTGRES_PUBLICATION_MODE": "all_tables", "PGCDC_TABLES_INCLUDE": "public.t,public.t2,public.born*",
				"PGCDC_POSTGRES_STREAMING": fmt.Sprint(streaming), "PGCDC_SNAPSHOT_MODE": "no_data"}
			p := e.start(env)
			p.waitStreaming()
			live := func(sql ...string) {
				for _, s := range sql {
					e.exec(s)
				}
			}
			// Live: written and altered while pgcdc reads.
			live(`INSERT INTO t VALUES (1, 12.34, '2026-01-01 10:00:00', 'a', 'happy')`,
				`ALTER TABLE t ALTER amount TYPE numeric(12,4), ALTER at TYPE timestamp(6)`,
				`INSERT INTO t VALUES (2, 12.3456, '2026-01-01 10:00:00.123456', 'b', 'sad')`)
			// A table born while running, written in its creating transaction and the next.
			live(`BEGIN; CREATE TABLE born (id int PRIMARY KEY, v text); INSERT INTO born VALUES (1, 'same transaction'); COMMIT`,
				`INSERT INTO born VALUES (2, 'next transaction')`)
			e.readWithSchemas("t", 2)
			if code := p.stop(); code != 0 {
				t.Fatalf("exit %d", code)
			}
			// Stopped across the DDL: decoded after all of it, on the next start.
			live(`INSERT INTO t VALUES (3, 1.5, '2026-01-01 10:00:00.5', 'c', 'happy')`,
				`ALTER TABLE t ALTER amount TYPE numeric(10,2) USING round(amount, 2), ALTER at TYPE timestamp(0)`,
				`ALTER TYPE mood ADD VALUE 'ok'`,
				`INSERT INTO t VALUES (4, 7.25, '2026-01-01 10:00:01', 'd', 'ok')`,
				`ALTER TABLE t RENAME COLUMN note TO remark`,
				`INSERT INTO t VALUES (5, 1, '2026-01-01 10:00:02', 'e', 'sad')`,
				`ALTER TABLE t ADD COLUMN extra int`,
				`INSERT INTO t VALUES (6, 1, '2026-01-01 10:00:03', 'f', 'sad', 66)`,
				`ALTER TABLE t DROP COLUMN extra`,
				`ALTER TABLE t ALTER COLUMN id TYPE bigint`,
				`INSERT INTO t VALUES (7, 1, '2026-01-01 10:00:04', 'g', 'sad')`,
				`ALTER TABLE t RENAME TO t2`,
				`INSERT INTO t2 VALUES (8, 1, '2026-01-01 10:00:05', 'h', 'sad')`,
				`DROP TABLE t2`,
				`CREATE TABLE t2 (id text PRIMARY KEY, v int)`,
				`INSERT INTO t2 VALUES ('nine', 9)`)
			p = e.start(env)
			p.waitStreaming()
			defer p.stop()

			got := map[string]ddlRecord{}
			for _, r := range e.readWithSchemas("t", 7) {
				got[fmt.Sprint(r.After["id"])] = r
			}
			for _, r := range e.readWithSchemas("t2", 2) {
				got["t2:"+fmt.Sprint(r.After["id"])] = r
			}
			check := func(id, field string, want any, wantSchema string) {
				t.Helper()
				r, ok := got[id]
				if !ok {
					t.Errorf("no event for row %s", id)
					return
				}
				if want != nil && jsonText(r.After[field]) != fmt.Sprint(want) {
					t.Errorf("row %s: %s = %v, want %v", id, field, r.After[field], want)
				}
				if wantSchema != "" {
					if s, _ := json.Marshal(r.fields[field]); !strings.Contains(string(s), wantSchema) {
						t.Errorf("row %s: schema of %s = %s, want %s", id, field, s, wantSchema)
					}
				}
			}
			// numeric(10,2) then numeric(12,4), encoded with the scale each row was written with.
			check("1", "amount", "BNI=", `"scale":"2"`) // 1234 at scale 2
			check("2", "amount", "AeJA", `"scale":"4"`) // 123456 at scale 4
			check("3", "amount", "Opg=", `"scale":"4"`) // 1.5000: 15000 at scale 4 (written before the change back)
			check("4", "amount", "AtU=", `"scale":"2"`) // 7.25: 725 at scale 2
			// timestamp(0) in milliseconds, timestamp(6) in microseconds.
			check("1", "at", 1767261600000, `"io.debezium.time.Timestamp"`)
			check("2", "at", 1767261600123456, `"io.debezium.time.MicroTimestamp"`)
			check("3", "at", 1767261600500000, `"io.debezium.time.MicroTimestamp"`)
			check("4", "at", 1767261601000, `"io.debezium.time.Timestamp"`)
			// A new enum label; a renamed, an added and a dropped column; a wider key.
			check("4", "m", "ok", `"allowed":"happy,sad,ok"`)
			check("5", "remark", "e", "")
			check("6", "extra", 66, "")
			check("7", "id", 7, `"int64"`)
			check("t2:8", "remark", "h", "")
			check("t2:nine", "v", 9, "")
			born := e.read("born", 2, time.Minute)
			if born[0].After["v"] != "same transaction" || born[1].After["v"] != "next transaction" {
				t.Errorf("rows of a table created while running: %+v", born)
			}
		})
	}
}

// jsonText prints a decoded JSON value as JSON writes it: 1767261600000, not 1.7672616e+12.
func jsonText(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}
