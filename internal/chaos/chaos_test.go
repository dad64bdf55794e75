package chaos

import (
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var pgcdcBin struct {
	once sync.Once
	path string
	err  error
}

// binary builds pgcdc once for the package's runs.
func binary(t *testing.T) string {
	t.Helper()
	pgcdcBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "pgcdc-chaos-bin-")
		if err == nil {
			pgcdcBin.path, err = BuildPgcdc(context.Background(), dir)
		}
		pgcdcBin.err = err
	})
	if pgcdcBin.err != nil {
		t.Fatal(pgcdcBin.err)
	}
	return pgcdcBin.path
}

// runChaos runs the harness on the package's shared cluster and fails t when the run could not
// complete or its verification failed.
func runChaos(t *testing.T, o Options) *Result {
	t.Helper()
	o.Cluster = testenv.SharedKafkaCluster(t)
	o.Binary = binary(t)
	o.WorkDir = t.TempDir()
	o.Logf = t.Logf
	ctx, cancel := context.WithTimeout(context.Background(), o.MaxDuration+20*time.Minute)
	defer cancel()
	res, err := Run(ctx, o)
	var out strings.Builder
	res.Write(&out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if res.EventsConsumed < res.EventsWritten {
		t.Errorf("%d events consumed, fewer than the %d written", res.EventsConsumed, res.EventsWritten)
	}
	return res
}

// TestStandbyChaos runs the standby pair (two pgcdc processes with ha.enabled) through the faults
// of the pgcdc lane and the takeovers, beside PostgreSQL's and Kafka's cheap faults: every fault
// that kills, freezes or cuts the active process hands the slot to the standby. The checks are
// TestShortChaos's (nothing lost, order per key, last events equal the rows, duplicates within their
// faults' bounds).
func TestStandbyChaos(t *testing.T) {
	testenv.Require(t)
	kinds := []Kind{ConnectorKill, ConnDrop, TakeoverKill, TakeoverFreeze, WalsenderTerminate, PGRestartFast, BrokerPause}
	res := runChaos(t, Options{Kinds: kinds, Standby: true, Duration: 90 * time.Second, MaxDuration: 8 * time.Minute,
		MinFaults: 10, MinEach: 1, MaxTxn: 5000})
	counts := res.FaultCounts()
	for _, k := range kinds {
		if counts[k] < 1 {
			t.Errorf("%d %s faults in the run, want 1", counts[k], k)
		}
	}
	if res.Takeovers < counts[TakeoverKill]+counts[TakeoverFreeze] {
		t.Errorf("%d takeovers seen, fewer than the %d takeover faults", res.Takeovers, counts[TakeoverKill]+counts[TakeoverFreeze])
	}
}

// clusterKinds are the faults TestClusterFaults drives one at a time.
var clusterKinds = []Kind{LeaderKill, RollingRestart, LeaderFreeze, ISRLoss}

// TestShortChaos is the chaos run of `make test`: about three minutes of faults in three overlapping
// lanes (pgcdc, PostgreSQL, Kafka) on the three-broker cluster (replication factor 3,
// min.insync.replicas 2), every kind at least once except the four cluster faults TestClusterFaults
// covers (the long form, make test-long, has them too). It fails when a committed change is lost, an
// event appears that no committed transaction made, a key's events appear out of commit order, a
// key's last event differs from its row, or a duplicate lies outside the bound of every fault that
// happened.
func TestShortChaos(t *testing.T) {
	testenv.Require(t)
	var kinds []Kind
	for _, k := range AllKinds {
		if !slices.Contains(clusterKinds, k) && !spec(k).needsStandby() {
			kinds = append(kinds, k)
		}
	}
	// The minimums extend the fault phase up to MaxDuration on a slow (shared) machine.
	// Uncompressed here (the other fault runs use the default, lz4): both forms of the record
	// batch stay under faults.
	o := Options{Kinds: kinds, Duration: 150 * time.Second, MaxDuration: 12 * time.Minute, MinFaults: 12, MinEach: 1, Compression: "none"}
	if testenv.Long() {
		o = Options{Kinds: AllKinds, Standby: true, Duration: 15 * time.Minute, MaxDuration: 40 * time.Minute, MinFaults: 150, MinEach: 5}
	}
	res := runChaos(t, o)
	counts := res.FaultCounts()
	for _, k := range o.Kinds {
		if counts[k] < o.MinEach {
			t.Errorf("%d %s faults in the run, want %d", counts[k], k, o.MinEach)
		}
	}
	// Writer 0 owns a random share of the keys, about 50,000 of them: its largest transaction is
	// one row per key it owns, at most MaxTxn (50,000). Faults may cut every attempt of the very
	// largest (a run on 2026-12-07 committed 44,557 of a planned 50,000): at least 4/5 of it.
	if res.LargestPlanned < 45000 || res.LargestTxn < res.LargestPlanned*4/5 {
		t.Errorf("largest committed transaction %d rows, want at least 4/5 of the workload's largest, %d (itself at least 45,000)", res.LargestTxn, res.LargestPlanned)
	}
}

// TestClusterFaults drives the cluster faults one at a time (the Kafka lane alone) through the real
// pgcdc process under load: kill -9 of the leader of the busiest partition, a rolling restart
// (controlled shutdown of each broker in turn), the busiest partition's leader frozen past the
// request timeout, and two of three brokers down (below min.insync.replicas: pgcdc waits, the slot
// proves it confirms nothing new, and it resumes). Each fault proves it happened (see its evidence);
// for each, nothing is lost, the order per key is kept, and every duplicate lies in a fault's window.
// The short form injects each once; the long form (make test-long) five times, with larger
// transactions.
func TestClusterFaults(t *testing.T) {
	testenv.Require(t)
	kinds := clusterKinds
	// A write timeout of 5 s keeps the freeze and the outage short; the minimums extend the fault
	// phase up to MaxDuration on a slow (shared) machine.
	o := Options{Kinds: kinds, Duration: 60 * time.Second, MaxDuration: 10 * time.Minute, MinFaults: len(kinds), MinEach: 1,
		MaxTxn: 5000, WriteTimeout: 5 * time.Second}
	if testenv.Long() {
		o = Options{Kinds: kinds, Duration: 10 * time.Minute, MaxDuration: 40 * time.Minute, MinFaults: 5 * len(kinds), MinEach: 5, RowsPerS: 3000}
	}
	res := runChaos(t, o)
	for _, k := range kinds {
		s := res.Kinds[k]
		if s.Count < o.MinEach || s.Lost != 0 {
			t.Errorf("%s: %d faults (want %d), %d lost", k, s.Count, o.MinEach, s.Lost)
		}
	}
	for _, f := range res.Faults {
		t.Logf("%s: %s; recovered in %s, longest stall %s", f.Kind, f.Evidence, f.Recovery.Round(100*time.Millisecond), f.Stall.Round(100*time.Millisecond))
	}
}

func TestPackRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 10000; i++ {
		tb, l, k, o := rng.IntN(4), rng.Uint64N(1<<30), rng.IntN(1<<30), rng.IntN(3)
		gt, gl, gk, gop := unpack(pack(tb, l, k, o))
		if gt != tb || gl != l || gk != k || gop != o {
			t.Fatalf("pack(%d, %d, %d, %d) unpacks to (%d, %d, %d, %d)", tb, l, k, o, gt, gl, gk, gop)
		}
	}
	// Identities of one table and transaction sort together.
	if !(pack(1, 5, 999, 2) < pack(1, 6, 0, 0) && pack(1, 1<<30-1, 0, 0) < pack(2, 0, 0, 0)) {
		t.Fatal("packing does not sort by table, then transaction")
	}
}

// plan never picks a key twice in a transaction (the identity of a change relies on it), only picks
// keys the writer owns, and chooses the operation from the model.
func TestPlanDistinctOwnedKeys(t *testing.T) {
	r := &run{opts: Options{Writers: 2, Seed: 7, MaxTxn: 50000}}
	w := newWriter(r, 1)
	w.exists[0][1] = true
	for _, n := range []int{1, 7, 50, 51, 300, 5000, 50000, 200000} {
		seen := map[[2]int]bool{}
		changes := w.plan(n)
		total := len(w.owned[0]) + len(w.owned[1]) + len(w.owned[2])
		if want := min(n, total); len(changes) != want {
			t.Fatalf("plan(%d): %d changes, want %d", n, len(changes), want)
		}
		for _, c := range changes {
			if seen[[2]int{c.table, c.key}] {
				t.Fatalf("plan(%d): key %d of table %d twice", n, c.key, c.table)
			}
			seen[[2]int{c.table, c.key}] = true
			if c.key%2 != 1 {
				t.Fatalf("plan(%d): key %d not owned by writer 1", n, c.key)
			}
			if (c.op == opCreate) == w.exists[c.table][c.key] {
				t.Fatalf("plan(%d): op %d for key %d (exists %v)", n, c.op, c.key, w.exists[c.table][c.key])
			}
		}
	}
}

func TestKeyOf(t *testing.T) {
	for raw, want := range map[string]int{`{"id":42}`: 42, `{"code":"k7"}`: 7, `{"id":0}`: 0} {
		got, err := keyOf([]byte(raw))
		if err != nil || got != want {
			t.Errorf("keyOf(%s) = %d, %v; want %d", raw, got, err, want)
		}
	}
	if _, err := keyOf([]byte(`{"other":1}`)); err == nil {
		t.Error("a key without id or code was accepted")
	}
}

func TestOutOfOrder(t *testing.T) {
	for _, c := range []struct {
		ids  []uint32
		want int
	}{
		{nil, -1},
		{[]uint32{1, 2, 3}, -1},
		{[]uint32{1, 2, 3, 2, 3, 4}, -1}, // a re-send after a restart
		{[]uint32{1, 3, 2}, 2},           // 2 first appears after 3
		{[]uint32{5, 1, 5, 6}, 1},
		{[]uint32{1, 1, 1, 2}, -1},
	} {
		if got := outOfOrder(c.ids); got != c.want {
			t.Errorf("outOfOrder(%v) = %d, want %d", c.ids, got, c.want)
		}
	}
}

func TestStallOf(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	samples := []sample{
		{at(0), 100, 200},    // pending
		{at(1000), 100, 300}, // no progress: stall 1 s (from start)
		{at(2000), 150, 300}, // progress
		{at(5000), 150, 400}, // 3 s without progress
		{at(6000), 400, 400}, // caught up
		{at(9000), 400, 400}, // idle, nothing pending: no stall
	}
	if got := stallOf(samples, t0); got != 3*time.Second {
		t.Fatalf("stall %s, want 3s", got)
	}
}

// pick takes the kinds behind their minimum first, then shares turns by weight.
func TestPickWeightsAndMinimums(t *testing.T) {
	r := &run{opts: Options{Duration: time.Hour, MinEach: 1, MinHeavy: 30}, res: &Result{}, phaseStart: time.Now()}
	kinds := []*kindSpec{spec(BrokerPause), spec(LeaderKill), spec(RollingRestart)}
	credit := make([]int, len(kinds))
	seen := map[Kind]int{}
	for i := 0; i < 3; i++ { // each once first
		k := r.pick(kinds, credit).kind
		seen[k]++
		r.res.kind(k).Count++
	}
	if len(seen) != 3 {
		t.Fatalf("first three picks %v, want each kind once", seen)
	}
	clear(seen)
	for i := 0; i < 600; i++ {
		k := r.pick(kinds, credit).kind
		seen[k]++
		r.res.kind(k).Count++
	}
	for k, n := range seen {
		if n < 199 || n > 201 {
			t.Fatalf("600 picks by weight 2:2:2: %v (%s)", seen, k)
		}
	}
	// Late in the run with the heavy kinds behind their pace, the one furthest behind is picked
	// until it has caught up with the other; then both; never the cheap kind.
	r.phaseStart = time.Now().Add(-50 * time.Minute)
	r.res = &Result{}
	r.res.kind(BrokerPause).Count, r.res.kind(LeaderKill).Count, r.res.kind(RollingRestart).Count = 40, 10, 20
	clear(seen)
	for i := 0; i < 10; i++ {
		k := r.pick(kinds, credit).kind
		seen[k]++
		r.res.kind(k).Count++
	}
	if seen[LeaderKill] != 10 {
		t.Fatalf("10 picks with leader-kill 10 behind rolling-restart: %v", seen)
	}
	clear(seen)
	for i := 0; i < 4; i++ {
		k := r.pick(kinds, credit).kind
		seen[k]++
		r.res.kind(k).Count++
	}
	if seen[LeaderKill] != 2 || seen[RollingRestart] != 2 {
		t.Fatalf("4 picks with both heavy kinds equally behind: %v", seen)
	}
}
