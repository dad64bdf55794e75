package chaos

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// TestShortChaos is the chaos run of `make test`: about five minutes in all, at least eight faults
// rotating through every kind, on dedicated servers (it restarts them). It fails when a committed
// change is lost, an event appears that no committed transaction made, a key's last event differs
// from its row, or a duplicate lies outside the bound of every fault that happened.
func TestShortChaos(t *testing.T) {
	testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{
		Duration:  150 * time.Second,
		MinFaults: 8,
		GapMin:    4 * time.Second,
		GapMax:    12 * time.Second,
		WorkDir:   t.TempDir(),
		Logf:      t.Logf,
	})
	var out strings.Builder
	res.Write(&out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	counts := res.FaultCounts()
	if len(res.Faults) < 8 {
		t.Errorf("%d faults, want at least 8", len(res.Faults))
	}
	for _, k := range AllKinds {
		if counts[k] == 0 {
			t.Errorf("no %s fault in the run", k)
		}
	}
	if res.LargestTxn < 50000 {
		t.Errorf("largest transaction %d rows, want 50,000", res.LargestTxn)
	}
	if res.EventsConsumed < res.EventsWritten {
		t.Errorf("%d events consumed, fewer than the %d written", res.EventsConsumed, res.EventsWritten)
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
