package connector_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand"
	"os"
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

// txn runs statements in one transaction; the versions are recorded once it committed.
func (w *ddlWorkload) txn(stmts []string, versions []ddlVersion) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
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
		w.txn(append([]string{fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, amount numeric(10,2), at timestamp(0))`, t.name)}, stmts...), vs)
		stmts, vs = w.insert(t, 2)
		w.txn(stmts, vs)
		w.ops["create"]++
	case action <= 3: // a column's type modifier changes: rows before, with and after it
		t := live[w.rnd.Intn(len(live))]
		before, vb := w.insert(t, 2)
		w.txn(before, vb)
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
		w.txn(append([]string{fmt.Sprintf(alter, t.name)}, after...), va)
		w.ops["alter type"]++
	case action == 4: // renamed: its rows go to the new name's topic
		t := live[w.rnd.Intn(len(live))]
		t.name = t.name + "r"
		t.names = append(t.names, t.name)
		stmts, vs := w.insert(t, 2)
		w.txn(append([]string{fmt.Sprintf(`ALTER TABLE %s RENAME TO %s`, strings.TrimSuffix(t.name, "r"), t.name)}, stmts...), vs)
		w.ops["rename"]++
	case action == 5: // dropped and created again under the same name, written at once
		t := live[w.rnd.Intn(len(live))]
		t.dropped = true
		w.gen++
		n := &ddlTable{name: t.name, amountMod: 4, atPrec: 6, idBase: w.gen * 100_000, live: map[int]bool{}, generation: w.gen}
		n.names = []string{n.name}
		w.tables = append(w.tables, n)
		stmts, vs := w.insert(n, 2)
		w.txn(append([]string{fmt.Sprintf(`DROP TABLE %s`, t.name),
			fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, amount numeric(12,4), at timestamp(6))`, n.name)}, stmts...), vs)
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
		ins, vi := w.insert(t, 1)
		w.txn(append(stmts, ins...), append(vs, vi...))
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
// written, while pgcdc is killed -9 and restarted, and once while it is stopped across the DDL.
// Every committed row version is on Kafka, each value encoded as of its own write, and the last
// event of every key equals the final row. PGCDC_TEST_DDL_DURATION (e.g. 10m, `make chaos`)
// makes it long; `make test` runs it for about a minute.
func TestDDLUnderLoad(t *testing.T) {
	testenv.Require(t)
	duration := 60 * time.Second
	if d, err := time.ParseDuration(os.Getenv("PGCDC_TEST_DDL_DURATION")); err == nil {
		duration = d
	}
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE keep (id int PRIMARY KEY)`)
	seed := time.Now().UnixNano()
	t.Logf("seed %d, %s", seed, duration)
	conn, err := pgx.Connect(context.Background(), e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	w := &ddlWorkload{t: t, e: e, conn: conn, rnd: rand.New(rand.NewSource(seed)), ops: map[string]int{}}
	env := map[string]string{
		"PGCDC_POSTGRES_PUBLICATION_MODE": "all_tables", "PGCDC_TABLES_INCLUDE": "public.d*,public.keep",
		"PGCDC_EVENTS_VALUE_SCHEMAS": "false", "PGCDC_EVENTS_KEY_SCHEMAS": "false", "PGCDC_SNAPSHOT_MODE": "no_data",
	}
	p := e.start(env)
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
			p.waitStreaming()
		}
		time.Sleep(time.Duration(w.rnd.Intn(40)) * time.Millisecond)
	}
	stopWriter()
	w.txn([]string{`INSERT INTO keep VALUES (1)`}, nil) // the end marker
	keep.live[1] = true
	t.Logf("%d committed row versions; operations %v; %d kills, stopped across DDL: %v", len(w.versions), w.ops, kills, stoppedAcross)

	// Read every topic the workload wrote to, wait for the marker first.
	if _, err := testenv.ReadTopic(context.Background(), e.brokers, e.topic("keep"), len(keep.live), 3*time.Minute); err != nil {
		t.Fatalf("read the end marker: %v", err)
	}
	byTopic := map[string][]ddlVersion{}
	for _, v := range w.versions {
		byTopic[v.topic] = append(byTopic[v.topic], v)
	}
	topics := make([]string, 0, len(byTopic))
	for tp := range byTopic {
		topics = append(topics, tp)
	}
	sort.Strings(topics)
	var missing []string
	last := map[string]map[int]string{} // topic -> id -> the last event's match string
	versionOf := map[string]ddlVersion{}
	for _, tp := range topics {
		want := byTopic[tp]
		records := len(want)
		for _, v := range want {
			versionOf[tp+" "+v.match()] = v
			if v.op == "d" {
				records++ // its tombstone
			}
		}
		msgs, err := testenv.ReadTopic(context.Background(), e.brokers, tp, records, 3*time.Minute)
		if err != nil { // the versions missing are listed below
			t.Errorf("read %s: %v", tp, err)
		}
		got := map[string]bool{}
		last[tp] = map[int]string{}
		for _, m := range msgs {
			if m.Value == nil {
				continue
			}
			var ev struct {
				Op     string         `json:"op"`
				Before map[string]any `json:"before"`
				After  map[string]any `json:"after"`
			}
			if err := json.Unmarshal(m.Value, &ev); err != nil {
				t.Fatal(err)
			}
			v := ddlVersion{op: ev.Op}
			img := ev.After
			if ev.Op == "d" {
				img = ev.Before
			} else {
				v.amount, _ = ev.After["amount"].(string)
				if f, ok := ev.After["at"].(float64); ok {
					v.at = int64(f)
				}
			}
			v.id = int(img["id"].(float64))
			got[v.match()] = true
			last[tp][v.id] = v.match()
		}
		for _, v := range want {
			if !got[v.match()] {
				missing = append(missing, fmt.Sprintf("%s: %+v", tp, v))
			}
		}
	}
	if len(missing) > 0 {
		if len(missing) > 20 {
			missing = missing[:20]
		}
		t.Fatalf("committed row versions not on Kafka as written (first %d):\n%s", len(missing), strings.Join(missing, "\n"))
	}

	// The last event of every key of the live tables equals the final row. A renamed table's rows
	// have their last events on the topic of the name they last changed under; ids are unique
	// across tables (idBase), so the newest topic holding an event of the id has its last one.
	mismatches := 0
	for _, tb := range w.liveTables() {
		lastOf := map[int]string{} // id -> topic + " " + match of its last event
		for _, name := range tb.names {
			tp := e.topic(name)
			for id, m := range last[tp] {
				if id >= tb.idBase && id < tb.idBase+100_000 {
					lastOf[id] = tp + " " + m
				}
			}
		}
		rows, err := conn.Query(context.Background(), fmt.Sprintf(`SELECT id, (amount * 100)::int8, extract(epoch FROM at)::int8 FROM %s`, tb.name))
		if err != nil {
			t.Fatal(err)
		}
		present := map[int]bool{}
		for rows.Next() {
			var id int
			var cents, at int64
			if err := rows.Scan(&id, &cents, &at); err != nil {
				t.Fatal(err)
			}
			present[id] = true
			v, ok := versionOf[lastOf[id]]
			if !ok || v.op == "d" || v.cents != cents || v.atUnix != at {
				mismatches++
				t.Errorf("%s row %d (amount %d/100, at %d): last event %+v", tb.name, id, cents, at, v)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		for id, m := range lastOf {
			if !present[id] && versionOf[m].op != "d" {
				mismatches++
				t.Errorf("%s row %d is gone, its last event is %s", tb.name, id, m)
			}
		}
	}
	if mismatches > 0 {
		t.Fatalf("%d keys whose last event is not the final row", mismatches)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
