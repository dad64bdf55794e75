package connector_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// This file proves the standby model of docs/operations.md ("High availability"): several pgcdc
// processes with ha.enabled share a slot; when the active one is killed (SIGKILL) or frozen
// (SIGSTOP) a standby takes over within a bounded time; a frozen one that thaws stands by again,
// and nothing it still had in flight can make a key's last record older than the database's row.

// sbWriter updates random keys of a table in small transactions, each update setting v to a value
// from one increasing counter, and remembers every committed value per key.
type sbWriter struct {
	dsn, table string
	keys       int
	stop       chan struct{}
	wg         sync.WaitGroup

	mu        sync.Mutex
	committed map[int][]int64 // key → values committed, in commit order
	err       error
	txns      int
}

func startSBWriter(t *testing.T, dsn, table string, keys int) *sbWriter {
	w := &sbWriter{dsn: dsn, table: table, keys: keys, stop: make(chan struct{}), committed: map[int][]int64{}}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		if err := w.run(); err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
		}
	}()
	t.Cleanup(w.finish)
	return w
}

func (w *sbWriter) run() error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, w.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rng := rand.New(rand.NewPCG(1, 2))
	var counter int64
	update := fmt.Sprintf(`UPDATE %s SET v = $2 WHERE id = $1`, w.table)
	for {
		select {
		case <-w.stop:
			return nil
		default:
		}
		type kv struct {
			k int
			v int64
		}
		var batch []kv
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		tx, err := conn.Begin(qctx)
		if err != nil {
			cancel()
			return err
		}
		for range 10 {
			counter++
			k := 1 + rng.IntN(w.keys)
			if _, err := tx.Exec(qctx, update, k, counter); err != nil {
				cancel()
				return err
			}
			batch = append(batch, kv{k, counter})
		}
		err = tx.Commit(qctx)
		cancel()
		if err != nil {
			return err
		}
		w.mu.Lock()
		for _, e := range batch {
			w.committed[e.k] = append(w.committed[e.k], e.v)
		}
		w.txns++
		w.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *sbWriter) finish() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

// opsAddrRE finds the operations endpoint's address in pgcdc's log.
var opsAddrRE = regexp.MustCompile(`"addr":"([^"]+)"[^\n]*"message":"operations endpoint`)

// haActive reads pgcdc_ha_active from the process's operations endpoint (false when unreadable).
func (p *proc) haActive() bool {
	m := opsAddrRE.FindStringSubmatch(p.out.String())
	if m == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m[1]+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "pgcdc_ha_active "); ok {
			return strings.TrimSpace(v) == "1"
		}
	}
	return false
}

// readyz returns the process's /readyz status and body.
func (p *proc) readyz() (int, string) {
	m := opsAddrRE.FindStringSubmatch(p.out.String())
	if m == nil {
		return 0, ""
	}
	resp, err := http.Get("http://" + m[1] + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text())
	}
	return resp.StatusCode, b.String()
}

// TestStandbyTakeover runs two pgcdc processes with ha.enabled under a load of updates and
// repeatedly kills (SIGKILL) or freezes (SIGSTOP, thawed after the takeover) the active one. Each
// time the other takes over and streams; the killed one is started again as the standby, the
// thawed one stands by on its own. At the end every committed value is on Kafka and each key's
// last record holds the database's final row.
func TestStandbyTakeover(t *testing.T) {
	e := newEnv(t, nil, nil)
	const table, keys = "sb", 300
	e.exec(fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, v bigint NOT NULL)`, table))
	e.exec(fmt.Sprintf(`INSERT INTO %s SELECT g, 0 FROM generate_series(1, %d) g`, table, keys))
	const takeoverAfter = 3 * time.Second
	overrides := map[string]string{
		"PGCDC_HA_ENABLED":           "true",
		"PGCDC_HA_TAKEOVER_AFTER":    takeoverAfter.String(),
		"PGCDC_EVENTS_KEY_SCHEMAS":   "false",
		"PGCDC_EVENTS_VALUE_SCHEMAS": "false",
		"PGCDC_KAFKA_PARTITIONS":     "3",
		"PGCDC_TABLES_INCLUDE":       "public." + table,
	}
	procs := []*proc{e.start(overrides), nil}
	procs[0].waitStreaming()
	procs[1] = e.start(overrides)
	procs[1].waitLog("standby: the slot's lease is held by another process", time.Minute)
	if code, body := procs[1].readyz(); code != http.StatusOK || !strings.HasPrefix(body, "standby") {
		t.Errorf("the standby's /readyz: %d %q, want 200 \"standby...\"", code, body)
	}
	if code, body := procs[0].readyz(); code != http.StatusOK || body != "streaming" {
		t.Errorf("the active one's /readyz: %d %q, want 200 \"streaming\"", code, body)
	}
	w := startSBWriter(t, e.dsn, table, keys)

	rounds := 2
	if testenv.Long() {
		rounds = 10
	}
	var kills, freezes []time.Duration
	thawed := map[string]int{} // how each thawed process learnt it was no longer active
	active := 0
	for round := range 2 * rounds {
		time.Sleep(2 * time.Second) // load flows through the active one
		a, s := procs[active], procs[1-active]
		if !a.haActive() {
			t.Fatalf("round %d: process %d (pid %d) is not the active one", round, active, a.cmd.Process.Pid)
		}
		streams := strings.Count(s.out.String(), `"message":"streaming"`)
		freeze := round%2 == 1
		start := time.Now()
		if freeze {
			if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
		} else {
			a.kill()
		}
		s.waitLogCount(`"message":"streaming"`, streams+1, time.Minute)
		took := time.Since(start)
		if !s.haActive() {
			t.Fatalf("round %d: the new active process reports pgcdc_ha_active 0", round)
		}
		if freeze {
			freezes = append(freezes, took)
			// Thawed, the old one finds its lease gone and stands by; it must not exit.
			lost := strings.Count(a.out.String(), "standby: waiting for the slot's lease")
			before := len(a.out.String())
			if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			a.waitLogCount("standby: waiting for the slot's lease", lost+1, time.Minute)
			switch after := a.out.String()[before:]; {
			case strings.Contains(after, "fenced by a newer active process"):
				thawed["fenced by Kafka"]++
			case strings.Contains(after, "kafka write withheld"):
				thawed["write withheld (heartbeat too old)"]++
			case strings.Contains(after, "lost the slot's lease"):
				thawed["lease lost"]++
			default:
				t.Errorf("round %d: the thawed process stood by without saying why:\n%s", round, tail(after, 3000))
			}
			if a.haActive() {
				t.Errorf("round %d: the thawed process still reports pgcdc_ha_active 1", round)
			}
		} else {
			kills = append(kills, took)
			procs[active] = e.start(overrides)
			procs[active].waitLog("standby: the slot's lease is held by another process", time.Minute)
		}
		t.Logf("round %d: %s of the active pid %d; pid %d streams %s later", round,
			map[bool]string{true: "SIGSTOP", false: "SIGKILL"}[freeze], a.cmd.Process.Pid, s.cmd.Process.Pid, took.Round(time.Millisecond))
		if took > 30*time.Second {
			t.Errorf("round %d: takeover took %s, want well under 30 s (target 15 s)", round, took)
		}
		active = 1 - active
	}
	time.Sleep(2 * time.Second)
	w.finish()
	if w.err != nil {
		t.Fatal(w.err)
	}
	// The active one stops cleanly (everything acknowledged and confirmed); then the standby.
	if code := procs[active].stop(); code != 0 {
		t.Fatalf("the active pgcdc exited %d", code)
	}
	if code := procs[1-active].stop(); code != 0 {
		t.Fatalf("the standby pgcdc exited %d", code)
	}
	for i, p := range procs {
		if out := p.out.String(); strings.Contains(out, `"level":"error"`) && !strings.Contains(out, "standing by") {
			t.Errorf("process %d logged an error:\n%s", i, tail(out, 3000))
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	total := testenv.TopicRecords(ctx, e.brokers, e.topic(table))
	msgs, err := testenv.ReadTopic(ctx, e.brokers, e.topic(table), int(total), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int][]int64{} // key → values in the topic's order (one key lives on one partition)
	for _, m := range msgs {
		var v struct {
			After *struct {
				ID int   `json:"id"`
				V  int64 `json:"v"`
			} `json:"after"`
		}
		if err := json.Unmarshal(m.Value, &v); err != nil || v.After == nil {
			continue
		}
		seen[v.After.ID] = append(seen[v.After.ID], v.After.V)
	}
	rows, err := e.db.Query(ctx, fmt.Sprintf(`SELECT id, v FROM %s`, table))
	if err != nil {
		t.Fatal(err)
	}
	final := map[int]int64{}
	for rows.Next() {
		var id int
		var v int64
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		final[id] = v
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	updates, copies, lost, wrong := 0, 0, 0, 0
	for k, values := range w.committed {
		updates += len(values)
		copies += len(seen[k])
		if problem := checkKeyHistory(values, seen[k]); problem != "" {
			lost++
			if lost <= 5 {
				t.Errorf("key %d: %s", k, problem)
			}
		}
		if got := seen[k]; len(got) == 0 || got[len(got)-1] != final[k] {
			wrong++
			if wrong <= 5 {
				t.Errorf("key %d: the last record holds v=%v, the database %d", k, last(got), final[k])
			}
		}
	}
	sort.Slice(kills, func(i, j int) bool { return kills[i] < kills[j] })
	sort.Slice(freezes, func(i, j int) bool { return freezes[i] < freezes[j] })
	t.Logf("%d transactions, %d updates of %d keys; %d records on the topic (%d copies of updates, %d re-sent); keys with a gap or an older value after a newer one: %d; keys whose last record is not the row: %d",
		w.txns, updates, len(w.committed), len(msgs), copies, copies-updates, lost, wrong)
	t.Logf("takeover after SIGKILL: %v; after SIGSTOP (takeover_after %s): %v; thawed processes: %v", kills, takeoverAfter, freezes, thawed)
}

// checkKeyHistory checks one key's records against its committed values: every committed value is
// on the topic, and after each record every later committed value follows (a replay after a
// takeover repeats a stretch; a stale write from an old process would put an older value after
// newer ones with no newer one after it). It returns "" when the history holds.
func checkKeyHistory(committed, onTopic []int64) string {
	pos := map[int64]int{} // value → index in committed
	for i, v := range committed {
		pos[v] = i
	}
	lastSeen := map[int64]int{} // value → last index on the topic
	for i, v := range onTopic {
		if _, ok := pos[v]; !ok && v != 0 {
			return fmt.Sprintf("value %d on the topic was never committed", v)
		}
		lastSeen[v] = i
	}
	for _, v := range committed {
		if _, ok := lastSeen[v]; !ok {
			return fmt.Sprintf("committed value %d is missing from the topic", v)
		}
	}
	// For each record, the committed values after it must appear after it: equivalently, the last
	// occurrences of the committed values are in commit order.
	prev := -1
	for _, v := range committed {
		if lastSeen[v] < prev {
			return fmt.Sprintf("value %d's last record comes before an older value's: the topic ends out of commit order %v", v, tail64(onTopic))
		}
		prev = lastSeen[v]
	}
	return ""
}

func last(v []int64) any {
	if len(v) == 0 {
		return "none"
	}
	return v[len(v)-1]
}

func tail64(v []int64) []int64 {
	if len(v) > 12 {
		return v[len(v)-12:]
	}
	return v
}
