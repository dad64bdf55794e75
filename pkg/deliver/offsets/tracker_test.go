package offsets

import (
	"math/rand/v2"
	"testing"
)

func TestTracker(t *testing.T) {
	tr := New(10)
	if p, ok := tr.Position(); !ok || p != 10 {
		t.Fatalf("start position %d %v", p, ok)
	}
	a, b, c := tr.Add(10), tr.Add(11), tr.Add(13) // 12 is a gap (compaction)
	check := func(want int64, pending int) {
		t.Helper()
		if p, ok := tr.Position(); !ok || p != want || tr.Pending() != pending {
			t.Fatalf("position %d (%v), pending %d; want %d, %d", p, ok, tr.Pending(), want, pending)
		}
	}
	check(10, 3)
	tr.Done(b)
	check(10, 2) // 10 still in progress: never commit past it
	tr.Done(a)
	check(13, 1)
	tr.Done(c)
	check(14, 0)
}

func TestSymbolicStart(t *testing.T) {
	tr := New(-2)
	if _, ok := tr.Position(); ok {
		t.Fatal("position known before the first record")
	}
	e := tr.Add(500)
	if p, ok := tr.Position(); !ok || p != 500 {
		t.Fatalf("position %d %v", p, ok)
	}
	tr.Done(e)
	if p, _ := tr.Position(); p != 501 {
		t.Fatalf("position %d", p)
	}
}

// Records finishing in random order: the position is always the oldest unfinished offset.
func TestRandomOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tr := New(0)
	var open []*Entry
	var next, end int64
	for step := 0; step < 20000; step++ {
		if len(open) < 3000 && (len(open) == 0 || r.IntN(2) == 0) {
			open = append(open, tr.Add(next))
			end = next + 1
			next += 1 + int64(r.IntN(2))
			continue
		}
		i := r.IntN(len(open))
		tr.Done(open[i])
		open = append(open[:i], open[i+1:]...)
		want := end
		for _, e := range open {
			want = min(want, e.Offset())
		}
		if p, _ := tr.Position(); p != want {
			t.Fatalf("step %d: position %d, want %d", step, p, want)
		}
		if tr.Pending() != len(open) {
			t.Fatalf("pending %d, want %d", tr.Pending(), len(open))
		}
	}
}
