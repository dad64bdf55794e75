package connector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgcdc/pgcdc/internal/debeziumtest"
	"github.com/pgcdc/pgcdc/internal/testenv"
)

// The same execute-snapshot signal, inserted once into a signal table both read, makes pgcdc and
// Debezium 3.6.1 snapshot a table incrementally while writers change a tenth of its rows. Windows
// depend on timing, so the sequences of a changed key may differ; what must not: the final state
// of every key (the last record per key), and the records of the rows nobody changed during the
// snapshot (one op "r" each, the same key and value but for the positions: source.lsn, txId,
// sequence, ts_*). It runs a Kafka Connect worker (about two minutes): `make test-long` runs it
// (PGCDC_TEST_LONG=1), as the other live comparisons with Debezium.
func TestIncrementalDebezium(t *testing.T) {
	if os.Getenv("PGCDC_TEST_LONG") == "" {
		t.Skip("the live comparison with Debezium runs in make test-long (PGCDC_TEST_LONG=1)")
	}
	start := time.Now()
	e := newEnv(t, nil, nil)
	const rows = 3000
	e.exec(`CREATE TABLE cmp (id int PRIMARY KEY, v int NOT NULL, label text, amount numeric(12,2), at timestamptz, doc jsonb)`)
	e.exec(fmt.Sprintf(`INSERT INTO cmp SELECT g, g, 'row ' || g, g * 1.25, '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 minute', jsonb_build_object('g', g)
		FROM generate_series(1, %d) g`, rows))
	e.exec(`CREATE TABLE dbz_signal (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048) NULL)`)

	p := e.start(map[string]string{
		"PGCDC_TABLES_INCLUDE":                  "public.cmp",
		"PGCDC_SNAPSHOT_MODE":                   "no_data",
		"PGCDC_SIGNAL_TABLE":                    "public.dbz_signal",
		"PGCDC_SNAPSHOT_INCREMENTAL_CHUNK_ROWS": "200",
	})
	p.logIncremental()
	p.waitStreaming()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dbzPrefix := e.prefix + "_dbz"
	c, err := debeziumtest.Start(ctx, debeziumtest.Options{
		PostgresDSN: e.dsn, Brokers: e.brokers, TopicPrefix: dbzPrefix,
		Slot: testenv.UniqueName(t, "dslot"), Publication: testenv.UniqueName(t, "dpub"),
		Tables: []string{"public.cmp", "public.dbz_signal"},
		Extra: map[string]string{
			"publication.autocreate.mode":     "filtered",
			"snapshot.mode":                   "no_data",
			"signal.data.collection":          "public.dbz_signal",
			"incremental.snapshot.chunk.size": "200",
		},
		KeySchemas: true, ValueSchemas: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			var lines []string
			for _, l := range strings.Split(c.Log(), "\n") {
				if strings.Contains(l, "ncremental") || strings.Contains(l, "ERROR") || strings.Contains(l, "WARN io.debezium") {
					lines = append(lines, l)
				}
			}
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			t.Logf("Kafka Connect log (incremental snapshot, errors and warnings):\n%s", strings.Join(lines, "\n"))
		}
		c.Stop()
	})

	// Writers change only ids divisible by 10 (and insert new ones): the other rows are
	// unchanged during the snapshot.
	w := startCmpWriter(t, e.dsn)
	time.Sleep(200 * time.Millisecond)
	e.exec(`INSERT INTO dbz_signal VALUES ('cmp-1', 'execute-snapshot', '{"data-collections": ["public.cmp"], "type": "incremental"}')`)
	t.Logf("Debezium started, the signal sent, %s after the start", time.Since(start).Round(time.Millisecond))
	p.waitLog("incremental snapshot: table done", 2*time.Minute)
	t.Logf("pgcdc's incremental snapshot done, %s after the start", time.Since(start).Round(time.Millisecond))
	for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(c.Log(), "incremental snapshotting of table") || !strings.Contains(c.Log(), "finished"); {
		if time.Now().After(deadline) {
			t.Fatal("Debezium did not finish its incremental snapshot within 2 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("Debezium's incremental snapshot done, %s after the start", time.Since(start).Round(time.Millisecond))
	ops := w.finish(t)
	// The last change: once a side's topic holds it, it holds every earlier record of the table
	// (one partition, kept in order by both producers).
	e.exec(`INSERT INTO cmp VALUES (999999, -1, 'end', 0, now(), '{}')`)
	readAll := func(prefix string) []rec {
		for deadline := time.Now().Add(2 * time.Minute); ; {
			recs := readNormalized(t, e.brokers, prefix, "public.cmp", rows)
			if len(recs) > 0 && cmpID(recs[len(recs)-1]) == 999999 {
				return recs[:len(recs)-1]
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the last change did not arrive within 2 minutes", prefix)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	want, got := readAll(dbzPrefix), readAll(e.prefix)
	t.Logf("both sides' records read, %s after the start", time.Since(start).Round(time.Millisecond))
	final := func(rs []rec) map[string]string {
		m := map[string]string{}
		for _, r := range maskAll(rs) {
			if r.key == nil {
				continue
			}
			state := "deleted"
			if pl := payloadOf(r.value); pl != nil {
				if op, _ := pl.get("op"); op != "d" {
					after, _ := pl.get("after")
					state = orderedString(after)
				}
			}
			m[orderedString(r.key)] = state
		}
		return m
	}
	fw, fg := final(want), final(got)
	if len(fw) != len(fg) {
		t.Errorf("keys: Debezium %d, pgcdc %d", len(fw), len(fg))
	}
	diffs := 0
	for k, s := range fw {
		if fg[k] != s && diffs < 10 {
			diffs++
			t.Errorf("final state of %s: Debezium %s, pgcdc %s", k, s, fg[k])
		}
	}

	// Rows nobody changed: exactly one op "r" record each, the same on both sides.
	unchanged := func(rs []rec) map[string]rec {
		m := map[string]rec{}
		n := map[string]int{}
		for _, r := range maskAll(rs) {
			k := orderedString(r.key)
			if r.key == nil || cmpID(r)%10 == 0 { // changed by the writer
				continue
			}
			m[k] = r
			n[k]++
		}
		for k, c := range n {
			if c != 1 {
				t.Errorf("key %s: %d records, want one op r", k, c)
			}
		}
		return m
	}
	uw, ug := unchanged(want), unchanged(got)
	compared := 0
	for k, w := range uw {
		g, ok := ug[k]
		if !ok {
			t.Errorf("key %s: only in Debezium", k)
			continue
		}
		var d []string
		diffTrees("key", w.key, g.key, &d)
		diffTrees("value", w.value, g.value, &d)
		for _, s := range d {
			if diffs++; diffs < 20 {
				t.Errorf("key %s: %s", k, s)
			}
		}
		compared++
	}
	if len(ug) != len(uw) {
		t.Errorf("unchanged rows: Debezium %d, pgcdc %d", len(uw), len(ug))
	}
	if compared < rows*8/10 {
		t.Fatalf("only %d unchanged rows compared", compared)
	}
	t.Logf("%d writes during the snapshots; %d keys with the same final state; %d unchanged rows with the same op r record (Debezium %d records, pgcdc %d)",
		ops, len(fw), compared, len(want), len(got))
	p.stop()
}

// cmpID is the id in a record's key.
func cmpID(r rec) int64 {
	if pl := payloadOf(r.key); pl != nil {
		if v, ok := pl.get("id"); ok {
			if n, ok := v.(json.Number); ok {
				id, _ := n.Int64()
				return id
			}
		}
	}
	return -1
}

// startCmpWriter changes the ids divisible by 10 of cmp (updates, deletes) and inserts new ones.
func startCmpWriter(t *testing.T, dsn string) *writer {
	t.Helper()
	return startWriterSQL(t, dsn, 2*time.Millisecond, func(i int) (string, []any) {
		id := (i*7919)%3000/10*10 + 10
		switch i % 10 {
		case 0:
			return `DELETE FROM cmp WHERE id = $1`, []any{id}
		case 1:
			return `INSERT INTO cmp VALUES ($1, 0, 'new', 1, now(), '{}')`, []any{100000 + i*10}
		default:
			return `UPDATE cmp SET v = v + 1, label = 'changed' WHERE id = $1`, []any{id}
		}
	})
}
