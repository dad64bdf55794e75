package connector_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// ddlTable is one incarnation of a table the DDL workload writes: its name now, the types its
// columns have now, and the key range of its rows (incarnations of one name never share keys).
type ddlTable struct {
	name       string
	amountMod  int // scale of amount: 2 (numeric(10,2)) or 4 (numeric(12,4))
	atPrec     int // precision of at: 0 or 6
	idBase     int
	next       int
	live       map[int]bool
	dropped    bool
	generation int
	names      []string // every name it had, the current one last: its rows' events are on their topics
}

// ddlVersion is one committed row version the checker looks for: in topic, with key id, the
// values encoded as of the write.
type ddlVersion struct {
	topic  string
	id     int
	op     string // c, u or d
	amount string // base64 of the unscaled value, as Decimal encodes it (c, u)
	at     int64  // ms (timestamp(0)) or µs (timestamp(6))
	cents  int64  // the amount's value in hundredths (c, u)
	atUnix int64  // the timestamp in seconds (c, u)
	// required: its transaction began with the table in the publication, so the version must be
	// on Kafka. Always, with a FOR ALL TABLES publication; with a table list (filtered), the
	// versions written before the table joined may be missing (its snapshot at the join stands
	// for them).
	required bool
}

func (v ddlVersion) match() string { return fmt.Sprintf("%d/%s/%s/%d", v.id, v.op, v.amount, v.at) }

// ddlWorkload writes rows and changes the schema of the tables it writes, recording every
// committed version.
type ddlWorkload struct {
	t        *testing.T
	e        *env
	conn     *pgx.Conn
	rnd      *rand.Rand
	tables   []*ddlTable
	versions []ddlVersion
	gen      int
	ops      map[string]int
	filtered bool            // postgres.publication_mode filtered: tables join the publication later
	history  []string        // every transaction, for PGCDC_TEST_DDL_LOGDIR
	absent   map[string]bool // topics whose size Kafka did not give (no topic: never joined)
	procs    *[]*proc        // the pgcdc processes, in order
}

var ddlBase = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)

// decimalB64 is Kafka Connect's Decimal encoding of the value unscaled/10^scale.
func decimalB64(unscaled int64) string {
	b := big.NewInt(unscaled).Bytes()
	if len(b) == 0 || b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// row returns the SQL literals of a new version of row id in t, and the version's expectation.
func (w *ddlWorkload) row(t *ddlTable, id int, op string) (amountSQL, atSQL string, v ddlVersion) {
	// Values whose type changes back and forth are exact in both types (a rewrite by ALTER TYPE
	// changes no value), so the final rows can be compared with the last events; the encodings
	// still differ by type: unscaled values at scale 2 or 4, milliseconds or microseconds.
	cents := int64(w.rnd.Intn(1_000_000))
	secs := int64(w.rnd.Intn(100_000))
	v = ddlVersion{topic: w.e.topic(t.name), id: id, op: op, cents: cents}
	amountSQL = fmt.Sprintf("%d.%02d", cents/100, cents%100)
	if t.amountMod == 2 {
		v.amount = decimalB64(cents)
	} else {
		v.amount = decimalB64(cents * 100)
	}
	at := ddlBase.Add(time.Duration(secs) * time.Second)
	v.atUnix = at.Unix()
	atSQL = at.Format("2006-01-02 15:04:05")
	if t.atPrec == 0 {
		v.at = at.UnixMilli()
	} else {
		v.at = at.UnixMicro()
	}
	return "'" + amountSQL + "'", "'" + atSQL + "'", v
}

// published reports whether table is in the publication now, read on the workload's connection
// before a transaction begins: when it is, the transaction began after the table joined, and its
// versions must be on Kafka. Always true with a FOR ALL TABLES publication.
func (w *ddlWorkload) published(table string) bool {
	w.t.Helper()
	if !w.filtered {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var in bool
	if err := w.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = 'public' AND tablename = $2)`,
		w.e.pub, table).Scan(&in); err != nil {
		w.t.Fatal(err)
	}
	return in
}

// txn runs statements in one transaction; the versions are recorded once it committed. required
// says whether the table was in the publication before the transaction began (published).
func (w *ddlWorkload) txn(stmts []string, versions []ddlVersion, required bool) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range versions {
		versions[i].required = required
	}
	tx, err := w.conn.Begin(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			_ = tx.Rollback(ctx)
			w.t.Fatalf("%s: %v", s, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		w.t.Fatal(err)
	}
	w.versions = append(w.versions, versions...)
	w.history = append(w.history, fmt.Sprintf("%s required=%v %s", time.Now().UTC().Format("15:04:05.000"), required, strings.Join(stmts, "; ")))
}

func (w *ddlWorkload) insert(t *ddlTable, n int) ([]string, []ddlVersion) {
	var stmts []string
	var vs []ddlVersion
	for i := 0; i < n; i++ {
		id := t.idBase + t.next
		t.next++
		a, at, v := w.row(t, id, "c")
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO %s VALUES (%d, %s, %s)`, t.name, id, a, at))
		vs = append(vs, v)
		t.live[id] = true
	}
	return stmts, vs
}

func (w *ddlWorkload) liveTables() []*ddlTable {
	var out []*ddlTable
	for _, t := range w.tables {
		if !t.dropped {
			out = append(out, t)
		}
	}
	return out
}

// step does one random thing to the schema or the rows.
func (w *ddlWorkload) step() {
	live := w.liveTables()
	action := w.rnd.Intn(10)
	if len(live) < 2 {
		action = 0
	}
	switch {
	case action == 0: // a table born, written in its creating transaction and the next
		w.gen++
		t := &ddlTable{name: fmt.Sprintf("d%d", w.gen), amountMod: 2, atPrec: 0, idBase: w.gen * 100_000, live: map[int]bool{}, generation: w.gen}
		t.names = []string{t.name}
		w.tables = append(w.tables, t)
		stmts, vs := w.insert(t, 3)
		w.txn(append([]string{fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, amount numeric(10,2), at timestamp(0))`, t.name)}, stmts...), vs, !w.filtered)
		stmts, vs = w.insert(t, 2)
		w.txn(stmts, vs, w.published(t.name))
		w.ops["create"]++
	case action <= 3: // a column's type modifier changes: rows before, with and after it
		t := live[w.rnd.Intn(len(live))]
		before, vb := w.insert(t, 2)
		w.txn(before, vb, w.published(t.name))
		var alter string
		if w.rnd.Intn(2) == 0 {
			if t.amountMod == 2 {
				t.amountMod, alter = 4, `ALTER TABLE %s ALTER amount TYPE numeric(12,4)`
			} else {
				t.amountMod, alter = 2, `ALTER TABLE %s ALTER amount TYPE numeric(10,2) USING round(amount, 2)`
			}
		} else {
			if t.atPrec == 0 {
				t.atPrec, alter = 6, `ALTER TABLE %s ALTER at TYPE timestamp(6)`
			} else {
				t.atPrec, alter = 0, `ALTER TABLE %s ALTER at TYPE timestamp(0)`
			}
		}
		after, va := w.insert(t, 2)
		w.txn(append([]string{fmt.Sprintf(alter, t.name)}, after...), va, w.published(t.name))
		w.ops["alter type"]++
	case action == 4: // renamed: its rows go to the new name's topic
		t := live[w.rnd.Intn(len(live))]
		required := w.published(t.name) // a renamed table stays in the publication
		t.name = t.name + "r"
		t.names = append(t.names, t.name)
		stmts, vs := w.insert(t, 2)
		w.txn(append([]string{fmt.Sprintf(`ALTER TABLE %s RENAME TO %s`, strings.TrimSuffix(t.name, "r"), t.name)}, stmts...), vs, required)
		w.ops["rename"]++
	case action == 5: // dropped and created again under the same name, written at once
		t := live[w.rnd.Intn(len(live))]
		t.dropped = true
		w.gen++
		n := &ddlTable{name: t.name, amountMod: 4, atPrec: 6, idBase: w.gen * 100_000, live: map[int]bool{}, generation: w.gen}
		n.names = []string{n.name}
		w.tables = append(w.tables, n)
		stmts, vs := w.insert(n, 2)
		// The new table is not in a table list: it joins again later.
		w.txn(append([]string{fmt.Sprintf(`DROP TABLE %s`, t.name),
			fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, amount numeric(12,4), at timestamp(6))`, n.name)}, stmts...), vs, !w.filtered)
		w.ops["drop and create"]++
	default: // rows change: updates and deletes
		t := live[w.rnd.Intn(len(live))]
		var stmts []string
		var vs []ddlVersion
		for id := range t.live {
			if len(stmts) >= 3 {
				break
			}
			if w.rnd.Intn(3) == 0 {
				stmts = append(stmts, fmt.Sprintf(`DELETE FROM %s WHERE id = %d`, t.name, id))
				vs = append(vs, ddlVersion{topic: w.e.topic(t.name), id: id, op: "d"})
				delete(t.live, id)
			} else {
				a, at, v := w.row(t, id, "u")
				stmts = append(stmts, fmt.Sprintf(`UPDATE %s SET amount = %s, at = %s WHERE id = %d`, t.name, a, at, id))
				vs = append(vs, v)
			}
		}
		required := w.published(t.name)
		ins, vi := w.insert(t, 1)
		w.txn(append(stmts, ins...), append(vs, vi...), required)
		w.ops["update/delete"]++
	}
}

// openTransactions keeps a transaction open across the other writer's DDL (and pgcdc's refresh of
// the publication), committing it after a while, until stop.
func (w *ddlWorkload) openTransactions(stop <-chan struct{}, wg *sync.WaitGroup, table *ddlTable, mu *sync.Mutex) {
	defer wg.Done()
	conn, err := pgx.Connect(context.Background(), w.e.dsn)
	if err != nil {
		w.t.Error(err)
		return
	}
	defer conn.Close(context.Background())
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		ctx := context.Background()
		tx, err := conn.Begin(ctx)
		if err != nil {
			w.t.Error(err)
			return
		}
		id := 900_000 + i
		if _, err := tx.Exec(ctx, `INSERT INTO keep VALUES ($1)`, id); err != nil {
			w.t.Error(err)
			return
		}
		time.Sleep(700 * time.Millisecond)
		if err := tx.Commit(ctx); err != nil {
			w.t.Error(err)
			return
		}
		mu.Lock()
		table.live[id] = true
		mu.Unlock()
	}
}

// TestDDLUnderLoad: tables created, altered, renamed, dropped and created again while rows are
// written, while pgcdc is killed -9 and restarted, and once while it is stopped across the DDL, in
// both kinds of publication:
//
//   - all_tables (FOR ALL TABLES): every committed row version is on Kafka.
//   - filtered (a table list pgcdc keeps in step with tables.include, refreshed every second): a
//     table created or re-created joins the publication later, and is snapshotted at its join
//     (snapshot.backfill_new_tables). Every version whose transaction began after its table
//     joined is on Kafka (the workload reads the publication before each transaction); the
//     versions before the join may be missing, their result is in the join's snapshot rows.
//
// Each version on Kafka is encoded as of its own write (the value, and the schema's scale and time
// unit), and the last event of every key, a snapshot row (op "r") included, equals the final row.
// PGCDC_TEST_DDL_DURATION (e.g. 10m: `make test-long`, `make chaos`) sets each mode's duration;
// `make test` runs each mode for about 40 s of workload.
func TestDDLUnderLoad(t *testing.T) {
	testenv.Require(t)
	duration := 40 * time.Second
	if d, err := time.ParseDuration(os.Getenv("PGCDC_TEST_DDL_DURATION")); err == nil {
		duration = d
	}
	for _, mode := range []string{"all_tables", "filtered"} {
		t.Run(mode, func(t *testing.T) { ddlUnderLoad(t, mode, duration) })
	}
}

func ddlUnderLoad(t *testing.T, mode string, duration time.Duration) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE keep (id int PRIMARY KEY)`)
	seed := time.Now().UnixNano()
	t.Logf("seed %d, %s, publication_mode %s", seed, duration, mode)
	conn, err := pgx.Connect(context.Background(), e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	w := &ddlWorkload{t: t, e: e, conn: conn, rnd: rand.New(rand.NewSource(seed)), ops: map[string]int{}, filtered: mode == "filtered"}
	env := map[string]string{
		"PGCDC_POSTGRES_PUBLICATION_MODE": mode, "PGCDC_TABLES_INCLUDE": "public.d*,public.keep",
		// Tables join a table list within a second or two, while the workload writes them.
		"PGCDC_POSTGRES_PUBLICATION_REFRESH_INTERVAL": "1s", "PGCDC_SNAPSHOT_BACKFILL_NEW_TABLES": "true",
		// Value schemas: a snapshot row is encoded as of its read, which the checker decodes with them.
		"PGCDC_EVENTS_VALUE_SCHEMAS": "true", "PGCDC_EVENTS_KEY_SCHEMAS": "false", "PGCDC_SNAPSHOT_MODE": "no_data",
	}
	p := e.start(env)
	procs := []*proc{p}
	w.procs = &procs
	defer func() {
		if t.Failed() {
			w.dumpLogs()
		}
	}()
	p.waitStreaming()

	keep := &ddlTable{name: "keep", live: map[int]bool{}}
	var keepMu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopOnce sync.Once
	stopWriter := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	defer stopWriter() // also when the test fails early: the writer must not outlive it
	wg.Add(1)
	go w.openTransactions(stop, &wg, keep, &keepMu)

	kills, stoppedAcross := 0, false
	end := time.Now().Add(duration)
	nextKill := time.Now().Add(duration / 4)
	for steps := 0; time.Now().Before(end); steps++ {
		w.step()
		switch {
		case time.Now().After(nextKill):
			p.kill() // proves the process died of SIGKILL
			kills++
			for i := 0; i < 3; i++ {
				w.step() // written and altered while no pgcdc runs
			}
			p = e.start(env)
			procs = append(procs, p)
			p.waitStreaming()
			nextKill = time.Now().Add(duration / 4)
		case !stoppedAcross && time.Now().After(end.Add(-duration/3)):
			if code := p.stop(); code != 0 {
				t.Fatalf("exit %d on a clean stop", code)
			}
			stoppedAcross = true
			for i := 0; i < 5; i++ {
				w.step()
			}
			p = e.start(env)
			procs = append(procs, p)
			p.waitStreaming()
		}
		time.Sleep(time.Duration(w.rnd.Intn(40)) * time.Millisecond)
	}
	stopWriter()
	if w.filtered {
		w.waitJoined(p)
	}
	// The end marker: once the slot is confirmed past it, every change committed before it is on
	// Kafka (and every join's snapshot rows are: waitJoined).
	w.txn([]string{`INSERT INTO keep VALUES (1)`}, nil, true)
	var markerLSN string
	if err := conn.QueryRow(context.Background(), `SELECT pg_current_wal_lsn()::text`).Scan(&markerLSN); err != nil {
		t.Fatal(err)
	}
	ddlWaitFor(t, p, "the slot confirmed past the end marker", 3*time.Minute, func() bool { return e.confirmedFlush() >= parseLSN(t, markerLSN) })

	var joins, tablesDone int
	for _, pr := range procs {
		joins += strings.Count(pr.out.String(), "tables joined the capture") + strings.Count(pr.out.String(), "tables captured since the last run")
		tablesDone += strings.Count(pr.out.String(), "incremental snapshot: table done")
	}
	t.Logf("%d committed row versions (%d must be on Kafka); operations %v; %d kills, stopped across DDL: %v; %d joins logged, %d join snapshots done",
		len(w.versions), w.required(), w.ops, kills, stoppedAcross, joins, tablesDone)

	// A join's snapshot can be requested a moment after the table is seen in the publication (and
	// a table dropped and created again is known by name already): the last events are read again
	// until they match the final rows, for a bounded time.
	deadline := time.Now().Add(time.Minute)
	for attempt := 1; ; attempt++ {
		events := w.readEvents()
		mismatches, summary := w.verify(events)
		if len(mismatches) == 0 {
			t.Logf("%s; every last event is the final row (read %d)", summary, attempt)
			break
		}
		if time.Now().After(deadline) {
			if len(mismatches) > 30 {
				mismatches = mismatches[:30]
			}
			t.Fatalf("%s; after %d reads, keys whose last event is not the final row (first %d):\n%s", summary, attempt, len(mismatches), strings.Join(mismatches, "\n"))
		}
		t.Logf("read %d: %d keys whose last event is not the final row yet; reading again", attempt, len(mismatches))
		time.Sleep(2 * time.Second)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// required counts the versions that must be on Kafka.
func (w *ddlWorkload) required() int {
	n := 0
	for _, v := range w.versions {
		if v.required {
			n++
		}
	}
	return n
}

// ddlWaitFor polls cond until it holds, for at most timeout, failing the test when pgcdc exits.
func ddlWaitFor(t *testing.T, p *proc, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case <-p.done:
			t.Fatalf("pgcdc exited (%v) while waiting for %s", p.err, what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitJoined waits until every live table is in the publication, and every join's snapshot is
// done: the progress table queues nothing, and knows every live table.
func (w *ddlWorkload) waitJoined(p *proc) {
	w.t.Helper()
	ctx := context.Background()
	var names, qualified []string
	for _, tb := range w.liveTables() {
		names = append(names, tb.name)
		qualified = append(qualified, "public."+tb.name)
	}
	ddlWaitFor(w.t, p, "every table in the publication", time.Minute, func() bool {
		var out int
		if err := w.conn.QueryRow(ctx, `SELECT count(*) FROM unnest($2::text[]) n
			WHERE NOT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = 'public' AND tablename = n)`, w.e.pub, names).Scan(&out); err != nil {
			w.t.Fatal(err)
		}
		return out == 0
	})
	var unknown, queued []string
	done := func() bool {
		var known []string
		if err := w.conn.QueryRow(ctx, `SELECT coalesce((SELECT array_agg(table_name || ' (seq ' || seq || ')' ORDER BY seq) FROM public.pgcdc_incremental_snapshot WHERE slot_name = $1 AND seq > 0), '{}'),
			coalesce((SELECT known_tables FROM public.pgcdc_incremental_snapshot WHERE slot_name = $1 AND seq = 0), '{}')`, w.e.slot).Scan(&queued, &known); err != nil {
			w.t.Fatal(err)
		}
		unknown = unknown[:0]
		for _, q := range qualified {
			if !slices.Contains(known, q) {
				unknown = append(unknown, q)
			}
		}
		return len(unknown) == 0 && len(queued) == 0
	}
	deadline := time.Now().Add(3 * time.Minute)
	for !done() {
		if time.Now().After(deadline) {
			w.t.Fatalf("the joins' incremental snapshots not done within 3m: live tables not known %v; queued %v", unknown, queued)
		}
		select {
		case <-p.done:
			w.t.Fatalf("pgcdc exited (%v) while waiting for the joins' incremental snapshots", p.err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ddlEvent is one change event of a workload topic, decoded with its value schema.
type ddlEvent struct {
	op     string
	id     int
	match  string // as ddlVersion.match: the raw encodings
	cents  int64  // the amount in hundredths, by the schema's scale (c, u, r)
	atUnix int64  // the timestamp in seconds, by the schema's time unit (c, u, r)
}

// readEvents reads every record of every topic the workload's tables had (each topic's full
// size: snapshot rows and redeliveries add to the versions), tombstones left out.
func (w *ddlWorkload) readEvents() map[string][]ddlEvent {
	w.t.Helper()
	topics := map[string]bool{}
	for _, tb := range w.tables {
		for _, n := range tb.names {
			topics[w.e.topic(n)] = true
		}
	}
	out := map[string][]ddlEvent{}
	w.absent = map[string]bool{}
	for tp := range topics {
		// -1: no topic (the table never joined), or Kafka did not answer: asked again, bounded.
		n := testenv.TopicRecords(context.Background(), w.e.brokers, tp)
		for i := 0; i < 3 && n < 0; i++ {
			time.Sleep(300 * time.Millisecond)
			n = testenv.TopicRecords(context.Background(), w.e.brokers, tp)
		}
		if n < 0 {
			w.absent[tp] = true
		}
		if n <= 0 {
			continue
		}
		msgs, err := testenv.ReadTopic(context.Background(), w.e.brokers, tp, int(n), 3*time.Minute)
		if err != nil {
			w.t.Fatalf("read %s (%d records): %v", tp, n, err)
		}
		for _, m := range msgs {
			if m.Value != nil {
				out[tp] = append(out[tp], ddlDecode(w.t, tp, m.Value))
			}
		}
	}
	return out
}

func ddlDecode(t *testing.T, topic string, value []byte) ddlEvent {
	t.Helper()
	var ev struct {
		Schema struct {
			Fields []struct {
				Field  string `json:"field"`
				Fields []struct {
					Field      string            `json:"field"`
					Name       string            `json:"name"`
					Parameters map[string]string `json:"parameters"`
				} `json:"fields"`
			} `json:"fields"`
		} `json:"schema"`
		Payload struct {
			Op     string         `json:"op"`
			Before map[string]any `json:"before"`
			After  map[string]any `json:"after"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(value, &ev); err != nil {
		t.Fatalf("%s: %v\n%s", topic, err, value)
	}
	d := ddlEvent{op: ev.Payload.Op}
	img := ev.Payload.After
	if d.op == "d" {
		img = ev.Payload.Before
	}
	d.id = int(img["id"].(float64))
	v := ddlVersion{id: d.id, op: d.op}
	if d.op != "d" {
		v.amount, _ = img["amount"].(string)
		if f, ok := img["at"].(float64); ok {
			v.at = int64(f)
		}
		scale, unit := -1, int64(0)
		for _, f := range ev.Schema.Fields {
			if f.Field != "after" {
				continue
			}
			for _, c := range f.Fields {
				switch {
				case c.Field == "amount" && c.Parameters["scale"] == "2":
					scale = 2
				case c.Field == "amount" && c.Parameters["scale"] == "4":
					scale = 4
				case c.Field == "at" && c.Name == "io.debezium.time.Timestamp":
					unit = 1000
				case c.Field == "at" && c.Name == "io.debezium.time.MicroTimestamp":
					unit = 1_000_000
				}
			}
		}
		raw, err := base64.StdEncoding.DecodeString(v.amount)
		if scale < 0 || unit == 0 || err != nil {
			t.Fatalf("%s: id %d: amount %q (scale %d), at's unit %d: not a workload row\n%s", topic, d.id, v.amount, scale, unit, value)
		}
		d.cents = new(big.Int).SetBytes(raw).Int64()
		if scale == 4 {
			d.cents /= 100
		}
		d.atUnix = v.at / unit
	}
	d.match = v.match()
	return d
}

// verify checks the events against the workload: every required version is on Kafka as written
// (fatal: the stream is complete once the slot is confirmed past the end marker), and returns the
// keys of the live tables whose last event is not the final row.
func (w *ddlWorkload) verify(events map[string][]ddlEvent) (mismatches []string, summary string) {
	w.t.Helper()
	got := map[string]ddlEvent{}          // topic + " " + match -> the event
	last := map[string]map[int]ddlEvent{} // topic -> id -> its last event
	snapshotRows, records := 0, 0
	for tp, evs := range events {
		last[tp] = map[int]ddlEvent{}
		records += len(evs)
		for _, ev := range evs {
			got[tp+" "+ev.match] = ev
			last[tp][ev.id] = ev
			if ev.op == "r" {
				snapshotRows++
			}
		}
	}
	var missing []string
	optionalFound := 0
	for _, v := range w.versions {
		ev, ok := got[v.topic+" "+v.match()]
		switch {
		case !ok && v.required:
			missing = append(missing, fmt.Sprintf("%s (no topic or size unreadable: %v): %+v; the id's events: %s", v.topic, w.absent[v.topic], v, eventsOf(events, v.id)))
		case ok && v.op != "d" && (ev.cents != v.cents || ev.atUnix != v.atUnix):
			// The raw value is as written, but the schema reads it otherwise (scale, time unit).
			missing = append(missing, fmt.Sprintf("%s: %+v read as %d/100 at %d by its schema", v.topic, v, ev.cents, ev.atUnix))
		case ok && !v.required:
			optionalFound++
		}
	}
	if len(missing) > 0 {
		if len(missing) > 20 {
			missing = missing[:20]
		}
		w.t.Fatalf("committed row versions not on Kafka as written (first %d):\n%s", len(missing), strings.Join(missing, "\n"))
	}

	// The last event of every key of the live tables equals the final row. A renamed table's rows
	// have their last events on the topic of the name they last changed under; ids are unique
	// across tables (idBase), so the newest topic holding an event of the id has its last one.
	checked := 0
	for _, tb := range w.liveTables() {
		lastOf := map[int]ddlEvent{}
		where := map[int]string{}
		for _, name := range tb.names {
			tp := w.e.topic(name)
			for id, ev := range last[tp] {
				if id >= tb.idBase && id < tb.idBase+100_000 {
					lastOf[id], where[id] = ev, tp
				}
			}
		}
		rows, err := w.conn.Query(context.Background(), fmt.Sprintf(`SELECT id, (amount * 100)::int8, extract(epoch FROM at)::int8 FROM %s`, tb.name))
		if err != nil {
			w.t.Fatal(err)
		}
		present := map[int]bool{}
		for rows.Next() {
			var id int
			var cents, at int64
			if err := rows.Scan(&id, &cents, &at); err != nil {
				w.t.Fatal(err)
			}
			present[id] = true
			checked++
			ev, ok := lastOf[id]
			if !ok || ev.op == "d" || ev.cents != cents || ev.atUnix != at {
				mismatches = append(mismatches, fmt.Sprintf("%s row %d (amount %d/100, at %d): last event %+v on %s", tb.name, id, cents, at, ev, where[id]))
			}
		}
		if err := rows.Err(); err != nil {
			w.t.Fatal(err)
		}
		for id, ev := range lastOf {
			if !present[id] && ev.op != "d" {
				mismatches = append(mismatches, fmt.Sprintf("%s row %d is gone, its last event is %+v on %s", tb.name, id, ev, where[id]))
			}
		}
	}
	sort.Strings(mismatches)
	return mismatches, fmt.Sprintf("%d versions written before their table joined, %d of them on Kafka; %d records of which %d snapshot rows (op r); %d final rows checked",
		len(w.versions)-w.required(), optionalFound, records, snapshotRows, checked)
}

// eventsOf lists the events of id on every topic (for a failure's message).
func eventsOf(events map[string][]ddlEvent, id int) string {
	var out []string
	for tp, evs := range events {
		for _, ev := range evs {
			if ev.id == id {
				out = append(out, fmt.Sprintf("%s %s", tp[strings.LastIndex(tp, ".")+1:], ev.match))
			}
		}
	}
	sort.Strings(out)
	return "[" + strings.Join(out, ", ") + "]"
}

// dumpLogs writes, when PGCDC_TEST_DDL_LOGDIR names a directory, the workload's transactions and
// every pgcdc process's output there (for a failure's investigation).
func (w *ddlWorkload) dumpLogs() {
	dir := os.Getenv("PGCDC_TEST_DDL_LOGDIR")
	if dir == "" {
		return
	}
	name := strings.ReplaceAll(w.t.Name(), "/", "_")
	files := map[string]string{name + "-workload.log": strings.Join(w.history, "\n") + "\n"}
	for i, p := range *w.procs {
		files[fmt.Sprintf("%s-pgcdc-%d.log", name, i)] = p.out.String()
	}
	for f, text := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(text), 0o644); err != nil {
			w.t.Logf("PGCDC_TEST_DDL_LOGDIR: %v", err)
		}
	}
	w.t.Logf("the workload's transactions and pgcdc's output are in %s", dir)
}
