package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

type rec struct {
	sub  uint32
	lsn  uint64
	data string
}

func newSpool(t *testing.T, maxBytes int64) (*Spool, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "spool")
	s, err := Open(dir, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

// drain commits xid and returns its records.
func drain(t *testing.T, s *Spool, xid uint32) []rec {
	t.Helper()
	it, err := s.Commit(xid)
	if err != nil {
		t.Fatalf("commit %d: %v", xid, err)
	}
	var got []rec
	for it.Next() {
		sub, lsn, data := it.Record()
		got = append(got, rec{sub, lsn, string(data)})
	}
	if err := it.Err(); err != nil {
		t.Fatalf("iterate %d: %v", xid, err)
	}
	if err := it.Close(); err != nil {
		t.Fatalf("close %d: %v", xid, err)
	}
	return got
}

func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+fileSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func size(data string) int64 { return int64(headerSize + len(data)) }

// TestScenarios runs sequences of operations and checks what each commit replays.
func TestScenarios(t *testing.T) {
	type op struct {
		kind      string // append, abort, commit
		xid, sub  uint32
		lsn       uint64
		data      string
		want      []rec // commit: expected records
		wantBytes int64 // Bytes() after the op (-1: don't check)
		wantOpen  int
	}
	app := func(xid, sub uint32, lsn uint64, data string, bytes int64, open int) op {
		return op{kind: "append", xid: xid, sub: sub, lsn: lsn, data: data, wantBytes: bytes, wantOpen: open}
	}
	abort := func(xid, sub uint32, bytes int64, open int) op {
		return op{kind: "abort", xid: xid, sub: sub, wantBytes: bytes, wantOpen: open}
	}
	commit := func(xid uint32, want []rec, bytes int64, open int) op {
		return op{kind: "commit", xid: xid, want: want, wantBytes: bytes, wantOpen: open}
	}
	tests := []struct {
		name string
		ops  []op
	}{
		{"append then commit keeps order", []op{
			app(10, 10, 100, "a", size("a"), 1),
			app(10, 10, 200, "bb", size("a")+size("bb"), 1),
			app(10, 10, 300, "", size("a")+size("bb")+size(""), 1),
			commit(10, []rec{{10, 100, "a"}, {10, 200, "bb"}, {10, 300, ""}}, 0, 0),
		}},
		{"commit of unknown transaction is empty", []op{
			commit(99, nil, 0, 0),
		}},
		{"subtransaction abort leaves the others", []op{
			app(10, 10, 1, "top1", -1, 1),
			app(10, 11, 2, "sub11-a", -1, 1),
			app(10, 12, 3, "sub12", -1, 1),
			app(10, 11, 4, "sub11-b", -1, 1),
			app(10, 10, 5, "top2", -1, 1),
			abort(10, 11, -1, 1),
			commit(10, []rec{{10, 1, "top1"}, {12, 3, "sub12"}, {10, 5, "top2"}}, 0, 0),
		}},
		{"aborting the trailing subtransaction truncates and releases", []op{
			app(10, 10, 1, "top", size("top"), 1),
			app(10, 11, 2, "s1", size("top")+size("s1"), 1),
			app(10, 11, 3, "s2", size("top")+size("s1")+size("s2"), 1),
			abort(10, 11, size("top"), 1),
			app(10, 10, 4, "after", size("top")+size("after"), 1),
			commit(10, []rec{{10, 1, "top"}, {10, 4, "after"}}, 0, 0),
		}},
		{"appends of an aborted subtransaction are dropped", []op{
			app(10, 11, 1, "x", size("x"), 1),
			abort(10, 11, 0, 1),
			app(10, 11, 2, "late", 0, 1),
			app(10, 10, 3, "top", size("top"), 1),
			commit(10, []rec{{10, 3, "top"}}, 0, 0),
		}},
		{"nested subtransactions aborted inner first", []op{
			app(10, 10, 1, "top", -1, 1),
			app(10, 11, 2, "outer", -1, 1),
			app(10, 12, 3, "inner", -1, 1),
			abort(10, 12, size("top")+size("outer"), 1),
			abort(10, 11, size("top")+size("outer"), 1), // no longer a known tail: skipped at replay
			commit(10, []rec{{10, 1, "top"}}, 0, 0),
		}},
		{"whole abort removes the transaction", []op{
			app(10, 10, 1, "a", size("a"), 1),
			app(10, 11, 2, "b", size("a")+size("b"), 1),
			abort(10, 10, 0, 0),
			commit(10, nil, 0, 0),
		}},
		{"abort of unknown transaction is a no-op", []op{
			abort(7, 7, 0, 0),
			abort(7, 8, 0, 0),
		}},
		{"interleaved transactions", []op{
			app(1, 1, 10, "1a", -1, 1),
			app(2, 2, 11, "2a", -1, 2),
			app(1, 3, 12, "1b", -1, 2),
			app(3, 3, 13, "3a", -1, 3),
			app(2, 2, 14, "2b", -1, 3),
			app(1, 1, 15, "1c", -1, 3),
			abort(3, 3, size("1a")+size("2a")+size("1b")+size("2b")+size("1c"), 2),
			commit(2, []rec{{2, 11, "2a"}, {2, 14, "2b"}}, size("1a")+size("1b")+size("1c"), 1),
			app(1, 1, 16, "1d", -1, 1),
			commit(1, []rec{{1, 10, "1a"}, {3, 12, "1b"}, {1, 15, "1c"}, {1, 16, "1d"}}, 0, 0),
		}},
		{"xid reused after commit starts afresh", []op{
			app(5, 5, 1, "first", -1, 1),
			commit(5, []rec{{5, 1, "first"}}, 0, 0),
			app(5, 5, 2, "second", size("second"), 1),
			commit(5, []rec{{5, 2, "second"}}, 0, 0),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, dir := newSpool(t, 0)
			for i, o := range tc.ops {
				switch o.kind {
				case "append":
					if err := s.Append(o.xid, o.sub, o.lsn, []byte(o.data)); err != nil {
						t.Fatalf("op %d: %v", i, err)
					}
				case "abort":
					if err := s.Abort(o.xid, o.sub); err != nil {
						t.Fatalf("op %d: %v", i, err)
					}
				case "commit":
					got := drain(t, s, o.xid)
					if fmt.Sprint(got) != fmt.Sprint(o.want) {
						t.Fatalf("op %d: commit %d replayed %v, want %v", i, o.xid, got, o.want)
					}
				}
				if o.wantBytes >= 0 && s.Bytes() != o.wantBytes {
					t.Fatalf("op %d (%s): Bytes() = %d, want %d", i, o.kind, s.Bytes(), o.wantBytes)
				}
				if s.Open() != o.wantOpen {
					t.Fatalf("op %d (%s): Open() = %d, want %d", i, o.kind, s.Open(), o.wantOpen)
				}
			}
			if n := len(spoolFiles(t, dir)); n != s.Open() {
				t.Fatalf("%d spool files for %d open transactions", n, s.Open())
			}
		})
	}
}

func TestWholeAbortRemovesFile(t *testing.T) {
	s, dir := newSpool(t, 0)
	for i := range 3 {
		if err := s.Append(42, 42, uint64(i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if len(spoolFiles(t, dir)) != 1 {
		t.Fatalf("files: %v", spoolFiles(t, dir))
	}
	if err := s.Abort(42, 42); err != nil {
		t.Fatal(err)
	}
	if f := spoolFiles(t, dir); len(f) != 0 {
		t.Fatalf("file not removed: %v", f)
	}
}

func TestManyOpenTransactions(t *testing.T) {
	const txns, rounds = 200, 20
	s, dir := newSpool(t, 0)
	maxLRU := 0
	for r := range rounds {
		for x := uint32(1); x <= txns; x++ {
			sub := x
			if r%3 == 1 {
				sub = x + 100000 // a subtransaction, aborted below for odd xids
			}
			if err := s.Append(x, sub, uint64(r), fmt.Appendf(nil, "%d/%d", x, r)); err != nil {
				t.Fatal(err)
			}
			maxLRU = max(maxLRU, s.lru.Len())
		}
	}
	if maxLRU > maxOpen {
		t.Fatalf("%d files open at once, cap %d", maxLRU, maxOpen)
	}
	if s.Open() != txns || len(spoolFiles(t, dir)) != txns {
		t.Fatalf("Open() = %d, %d files", s.Open(), len(spoolFiles(t, dir)))
	}
	for x := uint32(1); x <= txns; x += 2 {
		if err := s.Abort(x, x+100000); err != nil {
			t.Fatal(err)
		}
	}
	for x := uint32(txns); x >= 1; x-- { // commit in another order than opened
		got := drain(t, s, x)
		var want []rec
		for r := range rounds {
			sub := x
			if r%3 == 1 {
				if x%2 == 1 {
					continue
				}
				sub = x + 100000
			}
			want = append(want, rec{sub, uint64(r), fmt.Sprintf("%d/%d", x, r)})
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("xid %d: got %v, want %v", x, got, want)
		}
	}
	if s.Bytes() != 0 || s.Open() != 0 || len(spoolFiles(t, dir)) != 0 {
		t.Fatalf("after commits: Bytes %d, Open %d, files %v", s.Bytes(), s.Open(), spoolFiles(t, dir))
	}
	if len(s.writers) > maxOpen {
		t.Fatalf("%d idle write buffers kept", len(s.writers))
	}
}

func TestBound(t *testing.T) {
	const max = 100
	d40 := strings.Repeat("x", 40-headerSize) // 40 bytes spooled per append
	tests := []struct {
		name    string
		release func(t *testing.T, s *Spool)
	}{
		{"whole abort releases", func(t *testing.T, s *Spool) {
			if err := s.Abort(1, 1); err != nil {
				t.Fatal(err)
			}
		}},
		{"iterator close releases", func(t *testing.T, s *Spool) {
			it, err := s.Commit(1)
			if err != nil {
				t.Fatal(err)
			}
			if s.Bytes() != 80 {
				t.Fatalf("bytes released before Close: %d", s.Bytes())
			}
			for it.Next() {
			}
			if err := it.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{"trailing subtransaction abort releases", func(t *testing.T, s *Spool) {
			if err := s.Abort(1, 2); err != nil {
				t.Fatal(err)
			}
		}},
		{"reset releases", func(t *testing.T, s *Spool) {
			if err := s.Reset(); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newSpool(t, max)
			if err := s.Append(1, 1, 1, []byte(d40)); err != nil {
				t.Fatal(err)
			}
			if err := s.Append(1, 2, 2, []byte(d40)); err != nil {
				t.Fatal(err)
			}
			err := s.Append(3, 3, 3, []byte(d40))
			if !errors.Is(err, ErrFull) {
				t.Fatalf("third append: %v, want ErrFull", err)
			}
			for _, want := range []string{"transaction 3", "80 bytes", "100", "postgres.spool_max_bytes", "postgres.streaming"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if s.Bytes() != 80 {
				t.Fatalf("failed append changed Bytes to %d", s.Bytes())
			}
			tc.release(t, s)
			if s.Bytes() > 40 {
				t.Fatalf("Bytes %d after release", s.Bytes())
			}
			if err := s.Append(3, 3, 3, []byte(d40)); err != nil {
				t.Fatalf("append after release: %v", err)
			}
		})
	}
}

func TestOpenDeletesLeftovers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "spool")
	s, err := Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir: %v, %v", fi, err)
	}
	if err := s.Append(1, 1, 1, []byte("left behind")); err != nil {
		t.Fatal(err)
	}
	if err := s.closeFile(s.txns[1]); err != nil { // a crashed run: file on disk, never removed
		t.Fatal(err)
	}
	other := filepath.Join(dir, "README")
	if err := os.WriteFile(other, []byte("not a spool file"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "77-3.spool"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if len(spoolFiles(t, dir)) != 2 {
		t.Fatal("setup")
	}
	s2, err := Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if f := spoolFiles(t, dir); len(f) != 0 {
		t.Fatalf("leftovers not deleted: %v", f)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("non-spool file deleted: %v", err)
	}
	if s2.Bytes() != 0 || s2.Open() != 0 {
		t.Fatal("new spool not empty")
	}
	if _, err := Open("", 0); err == nil {
		t.Fatal("empty dir accepted")
	}
}

func TestCorruptFile(t *testing.T) {
	tests := []struct {
		name   string
		damage func(path string) error
	}{
		{"truncated mid-record", func(p string) error {
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, fi.Size()-3)
		}},
		{"truncated mid-header", func(p string) error {
			return os.Truncate(p, size("first")+5)
		}},
		{"garbage appended", func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			f.Write([]byte("junk"))
			return f.Close()
		}},
		{"length field too large", func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			var b [4]byte
			binary.LittleEndian.PutUint32(b[:], 1<<30)
			f.WriteAt(b[:], size("first")+12) // length of the second record
			return f.Close()
		}},
		{"length field too small", func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			var b [4]byte
			binary.LittleEndian.PutUint32(b[:], 2)
			f.WriteAt(b[:], 12) // length of the first record
			return f.Close()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, dir := newSpool(t, 0)
			for i, d := range []string{"first", "second record", "third"} {
				if err := s.Append(9, 9, uint64(i), []byte(d)); err != nil {
					t.Fatal(err)
				}
			}
			path := s.txns[9].path
			if err := s.closeFile(s.txns[9]); err != nil {
				t.Fatal(err)
			}
			if err := tc.damage(path); err != nil {
				t.Fatal(err)
			}
			it, err := s.Commit(9)
			if err == nil {
				for it.Next() {
				}
				err = it.Err()
				if cerr := it.Close(); cerr != nil {
					t.Fatal(cerr)
				}
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
				t.Fatalf("got %v, want ErrCorrupt naming %s", err, path)
			}
			if s.Bytes() != 0 || len(spoolFiles(t, dir)) != 0 {
				t.Fatalf("corrupt transaction not cleaned up: %d bytes, files %v", s.Bytes(), spoolFiles(t, dir))
			}
		})
	}
}

// TestCorruptDuringReplay damages the file after Commit checked its size.
func TestCorruptDuringReplay(t *testing.T) {
	s, _ := newSpool(t, 0)
	big := bytes.Repeat([]byte("z"), 3*bufSize)
	for i := range 4 {
		if err := s.Append(9, 9, uint64(i), big); err != nil {
			t.Fatal(err)
		}
	}
	it, err := s.Commit(9)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if !it.Next() {
		t.Fatal(it.Err())
	}
	if err := os.Truncate(it.t.path, int64(len(big))*2); err != nil {
		t.Fatal(err)
	}
	n := 1
	for it.Next() {
		n++
	}
	if err := it.Err(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), it.t.path) {
		t.Fatalf("after %d records: %v", n, err)
	}
}

func TestLargeRecord(t *testing.T) {
	s, _ := newSpool(t, 0)
	big := make([]byte, 7<<20+13)
	for i := range big {
		big[i] = byte(i * 7)
	}
	want := [][]byte{[]byte("small"), big, []byte("small again"), big[:3<<20]}
	for i, d := range want {
		if err := s.Append(1, 1, uint64(i), d); err != nil {
			t.Fatal(err)
		}
	}
	it, err := s.Commit(1)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	i := 0
	for ; it.Next(); i++ {
		_, lsn, data := it.Record()
		if lsn != uint64(i) || !bytes.Equal(data, want[i]) {
			t.Fatalf("record %d: lsn %d, %d bytes differ from %d", i, lsn, len(data), len(want[i]))
		}
	}
	if it.Err() != nil || i != len(want) {
		t.Fatalf("%d records, err %v", i, it.Err())
	}
}

func TestResetAndClose(t *testing.T) {
	s, dir := newSpool(t, 0)
	for x := uint32(1); x <= 40; x++ {
		if err := s.Append(x, x, 1, []byte("data")); err != nil {
			t.Fatal(err)
		}
	}
	it, err := s.Commit(40)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reset(); err != nil {
		t.Fatal(err)
	}
	if it.Next() || it.Err() == nil {
		t.Fatal("iterator survived Reset")
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	if s.Bytes() != 0 || s.Open() != 0 || len(spoolFiles(t, dir)) != 0 || s.lru.Len() != 0 {
		t.Fatalf("after Reset: Bytes %d Open %d files %v lru %d", s.Bytes(), s.Open(), spoolFiles(t, dir), s.lru.Len())
	}
	if err := s.Append(1, 1, 2, []byte("again")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(spoolFiles(t, dir)) != 0 {
		t.Fatal("Close left files")
	}
	if err := s.Append(1, 1, 3, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after Close: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("Close removed the directory: %v", err)
	}
}

// TestFlatMemory spools 200 MB through one transaction and replays it while watching the heap.
func TestFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("spools 200 MB")
	}
	const total, recSize = 200 << 20, 8 << 10
	const limit = 20 << 20
	s, _ := newSpool(t, 0)
	data := make([]byte, recSize)
	runtime.GC()
	var ms runtime.MemStats
	var peak uint64
	check := func() {
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		if ms.HeapInuse > limit {
			t.Fatalf("HeapInuse %d MB > %d MB", ms.HeapInuse>>20, limit>>20)
		}
	}
	start := time.Now()
	n := total / recSize
	for i := range n {
		binary.LittleEndian.PutUint64(data, uint64(i))
		sub := uint32(1)
		if i%10 == 9 {
			sub = 2 // aborted below
		}
		if err := s.Append(1, sub, uint64(i), data); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 0 {
			check()
		}
	}
	if s.Bytes() != int64(n)*(headerSize+recSize) {
		t.Fatalf("Bytes %d", s.Bytes())
	}
	if err := s.Abort(1, 2); err != nil {
		t.Fatal(err)
	}
	it, err := s.Commit(1)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for it.Next() {
		sub, lsn, d := it.Record()
		if sub != 1 || lsn%10 == 9 || binary.LittleEndian.Uint64(d) != lsn || len(d) != recSize {
			t.Fatalf("record %d: sub %d lsn %d len %d", got, sub, lsn, len(d))
		}
		if got%1000 == 0 {
			check()
		}
		got++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	check()
	if want := n - n/10; got != want {
		t.Fatalf("replayed %d records, want %d", got, want)
	}
	t.Logf("%d MB spooled and replayed in %v, peak HeapInuse %.1f MB", total>>20, time.Since(start).Round(time.Millisecond), float64(peak)/(1<<20))
}
