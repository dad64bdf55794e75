package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// Kind is a kind of fault.
type Kind string

// The faults the harness injects.
const (
	ConnectorKill      Kind = "connector-kill"       // SIGKILL of pgcdc, restarted at once
	WalsenderTerminate Kind = "walsender-terminate"  // pg_terminate_backend of pgcdc's walsender
	BrokerRestart      Kind = "broker-restart"       // clean broker stop (SIGTERM) and start
	BrokerKill         Kind = "broker-kill"          // SIGKILL of the broker and start
	BrokerPause        Kind = "broker-pause"         // SIGSTOP of the broker for 3-15 s (a slow broker), then SIGCONT
	PGRestartFast      Kind = "pg-restart-fast"      // pg_ctl stop -m fast equivalent (SIGINT) and start
	PGRestartImmediate Kind = "pg-restart-immediate" // SIGQUIT: no shutdown checkpoint, crash recovery
)

// AllKinds lists every fault kind in rotation order before shuffling.
var AllKinds = []Kind{ConnectorKill, WalsenderTerminate, BrokerRestart, PGRestartFast, PGRestartImmediate, BrokerKill, BrokerPause}

// Options configure a run. Zero values take the defaults noted.
type Options struct {
	Duration   time.Duration // fault phase; default 5m
	MinFaults  int           // keep injecting past Duration (up to twice it) until this many; default 8
	GapMin     time.Duration // pause between faults, drawn uniformly in [GapMin, GapMax]; default 5s
	GapMax     time.Duration // default 20s
	Kinds      []Kind        // default AllKinds
	Seed       uint64        // default: from the clock
	Writers    int           // concurrent writer connections; default 2
	RowsPerS   int           // average rows per second across writers; default 1500
	MaxTxn     int           // largest transaction; default 50,000 rows
	Partitions int           // partitions per topic; default 3
	Streaming  bool          // postgres.streaming (protocol v2 with the local spool)
	WorkDir    string        // logs (pgcdc output, server logs on failure); default a temp dir
	Binary     string        // pgcdc binary; built (without -race) when empty
	Logf       func(format string, args ...any)
}

func (o *Options) defaults() {
	if o.Duration <= 0 {
		o.Duration = 5 * time.Minute
	}
	if o.MinFaults <= 0 {
		o.MinFaults = 8
	}
	if o.GapMin <= 0 {
		o.GapMin = 5 * time.Second
	}
	if o.GapMax < o.GapMin {
		o.GapMax = 4 * o.GapMin
	}
	if len(o.Kinds) == 0 {
		o.Kinds = AllKinds
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	if o.Writers <= 0 {
		o.Writers = 2
	}
	if o.RowsPerS <= 0 {
		o.RowsPerS = 1500
	}
	if o.MaxTxn <= 0 {
		o.MaxTxn = 50000
	}
	if o.Partitions <= 0 {
		o.Partitions = 3
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Fault is one injected fault with its evidence and duplicate window.
type Fault struct {
	Kind     Kind
	At       time.Time
	Took     time.Duration
	Evidence string
	// Floor and Ceil bound the transactions this fault may make pgcdc send again: those whose commit
	// end LSN is in (Floor, Ceil].
	Floor, Ceil uint64
}

// Result is what a run observed.
type Result struct {
	Seed     uint64
	Duration time.Duration // whole run, set-up to verification
	Faults   []Fault

	TxnsCommitted   int // per the ledger
	TxnsRolledBack  int // deliberate rollbacks
	TxnsFailed      int // failed by a fault before or during COMMIT
	FailedCommitted int // of those, committed after all (settled by the ledger)
	LargestTxn      int // rows

	EventsWritten   int // change events the committed transactions must produce (data + ledger rows)
	TombstonesWant  int // deletes (each must be followed by a tombstone)
	RecordsConsumed int // every record read back, duplicates and tombstones included
	EventsConsumed  int // change events read back (not tombstones), duplicates included

	Lost              int // committed changes missing from Kafka
	Unexpected        int // events of no committed change (e.g. of a rolled-back transaction)
	MissingTombstones int
	Duplicates        int          // extra copies of change events
	DupByKind         map[Kind]int // duplicates attributed to the fault kind whose window holds them
	WindowByKind      map[Kind]int // sum over the faults of a kind of the events in their windows
	Unexplained       int          // duplicates outside every fault window that could explain them
	KeysChecked       int          // keys whose last event was compared with PostgreSQL
	StateMismatches   int          // keys whose last event differs from the row
	LedgerMismatches  int          // ledger rows and writers' outcomes that disagree
	Problems          []string     // the first problems found, for the report
	ConnectorStarts   int
	LogDir            string
}

// Err summarizes the verification: nil when nothing was lost and every bound held.
func (r *Result) Err() error {
	var errs []string
	if r.Lost != 0 {
		errs = append(errs, fmt.Sprintf("%d committed changes lost", r.Lost))
	}
	if r.Unexpected != 0 {
		errs = append(errs, fmt.Sprintf("%d unexpected events", r.Unexpected))
	}
	if r.MissingTombstones != 0 {
		errs = append(errs, fmt.Sprintf("%d tombstones missing", r.MissingTombstones))
	}
	if r.StateMismatches != 0 {
		errs = append(errs, fmt.Sprintf("%d keys whose last event differs from PostgreSQL", r.StateMismatches))
	}
	if r.LedgerMismatches != 0 {
		errs = append(errs, fmt.Sprintf("%d transactions whose ledger row and writer disagree", r.LedgerMismatches))
	}
	if r.Unexplained != 0 {
		errs = append(errs, fmt.Sprintf("%d duplicates outside the bound of every fault", r.Unexplained))
	}
	if r.EventsWritten == 0 {
		errs = append(errs, "no events written")
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New("chaos: " + strings.Join(errs, "; "))
}

// FaultCounts returns the number of faults per kind.
func (r *Result) FaultCounts() map[Kind]int {
	m := map[Kind]int{}
	for _, f := range r.Faults {
		m[f.Kind]++
	}
	return m
}

// Write prints the summary.
func (r *Result) Write(w interface{ Write([]byte) (int, error) }) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("chaos result (seed %d, %s, pgcdc started %d times, logs in %s)", r.Seed, r.Duration.Round(time.Second), r.ConnectorStarts, r.LogDir)
	counts := r.FaultCounts()
	var kinds []string
	for k := range counts {
		kinds = append(kinds, string(k))
	}
	sort.Strings(kinds)
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[Kind(k)]))
	}
	p("  faults injected:   %d (%s)", len(r.Faults), strings.Join(parts, ", "))
	p("  transactions:      %d committed (largest %d rows), %d rolled back, %d cut by a fault (%d of them committed, settled by the ledger)",
		r.TxnsCommitted, r.LargestTxn, r.TxnsRolledBack, r.TxnsFailed, r.FailedCommitted)
	p("  events written:    %d change events (+ %d tombstones due)", r.EventsWritten, r.TombstonesWant)
	p("  events consumed:   %d change events, %d records in all", r.EventsConsumed, r.RecordsConsumed)
	p("  lost:              %d", r.Lost)
	p("  unexpected:        %d    missing tombstones: %d", r.Unexpected, r.MissingTombstones)
	var dparts []string
	for _, k := range kinds {
		dparts = append(dparts, fmt.Sprintf("%s %d of window %d", k, r.DupByKind[Kind(k)], r.WindowByKind[Kind(k)]))
	}
	p("  duplicates:        %d (%s); outside every bound: %d", r.Duplicates, strings.Join(dparts, ", "), r.Unexplained)
	p("  final state:       %d keys compared with PostgreSQL, %d mismatches", r.KeysChecked, r.StateMismatches)
	for _, pr := range r.Problems {
		p("  problem: %s", pr)
	}
	if err := r.Err(); err != nil {
		p("  FAILED: %v", err)
	} else {
		p("  OK: nothing lost, every duplicate within its fault's bound, last events equal PostgreSQL")
	}
}

// run is the state of one harness run.
type run struct {
	opts Options
	rng  *rand.Rand
	res  *Result
	logf func(format string, args ...any)

	srv  *servers
	conn *connector
	scan *walScanner
	ws   []*writer

	mu       sync.Mutex
	problems []string
}

func (r *run) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.problems) < 30 {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

// Run runs the harness: servers, pgcdc, writers and faults for opts.Duration, then the verification.
// The error reports a failure of the harness itself (a server that does not come back, pgcdc ending on
// its own, a bounded wait exceeded); verification failures are in the Result (see Result.Err).
func Run(ctx context.Context, opts Options) (*Result, error) {
	opts.defaults()
	began := time.Now()
	r := &run{opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, 0x9e3779b97f4a7c15)), logf: opts.Logf,
		res: &Result{Seed: opts.Seed, DupByKind: map[Kind]int{}, WindowByKind: map[Kind]int{}}}
	if r.opts.WorkDir == "" {
		dir, err := os.MkdirTemp("", "pgcdc-chaos-")
		if err != nil {
			return r.res, err
		}
		r.opts.WorkDir = dir
	}
	r.res.LogDir = r.opts.WorkDir
	defer func() { r.res.Duration = time.Since(began) }()
	err := r.run(ctx)
	r.res.Problems = append(r.res.Problems, r.problems...)
	return r.res, err
}

func (r *run) run(ctx context.Context) error {
	bin := r.opts.Binary
	if bin == "" {
		var err error
		if bin, err = buildPgcdc(ctx, r.opts.WorkDir); err != nil {
			return err
		}
	}
	r.logf("chaos: seed %d, fault phase %s, writers %d at %d rows/s, logs in %s", r.opts.Seed, r.opts.Duration, r.opts.Writers, r.opts.RowsPerS, r.opts.WorkDir)
	srv, err := startServers(ctx, r.opts.WorkDir, r.logf)
	if err != nil {
		return err
	}
	r.srv = srv
	defer srv.close()
	if err := srv.setup(ctx); err != nil {
		return err
	}

	r.scan = newWALScanner(srv)
	if err := r.scan.init(ctx); err != nil {
		return err
	}
	r.conn = newConnector(bin, srv, r.opts, r.logf)
	defer r.conn.close()
	if err := r.conn.start(); err != nil {
		return err
	}
	if err := srv.waitActive(ctx, r.conn, 2*time.Minute); err != nil {
		return fmt.Errorf("pgcdc did not start streaming: %w\n%s", err, r.conn.tail())
	}

	// Writers and the WAL scanner run during the fault phase.
	wctx, stopWriters := context.WithCancel(ctx)
	defer stopWriters()
	var wg sync.WaitGroup
	werr := make(chan error, r.opts.Writers+1)
	for i := 0; i < r.opts.Writers; i++ {
		w := newWriter(r, i)
		r.ws = append(r.ws, w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.run(wctx); err != nil {
				werr <- fmt.Errorf("writer %d: %w", w.id, err)
			}
		}()
	}
	sctx, stopScan := context.WithCancel(ctx)
	defer stopScan()
	scanDone := make(chan struct{})
	go func() { defer close(scanDone); r.scan.loop(sctx) }()

	ferr := r.faultLoop(ctx, werr)
	stopWriters()
	wg.Wait()
	close(werr)
	for err := range werr {
		ferr = errors.Join(ferr, err)
	}
	if ferr != nil {
		stopScan()
		<-scanDone
		return ferr
	}
	r.logf("chaos: fault phase over (%d faults); waiting for pgcdc to catch up", len(r.res.Faults))
	if err := r.drain(ctx); err != nil {
		stopScan()
		<-scanDone
		return err
	}
	stopScan()
	<-scanDone
	if err := r.scan.scan(ctx); err != nil { // the last commits
		return fmt.Errorf("final WAL scan: %w", err)
	}
	return r.verify(ctx)
}

// drain waits until pgcdc has confirmed past the last commit, then stops it cleanly.
func (r *run) drain(ctx context.Context) error {
	target, err := r.srv.walInsert(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		if err := r.conn.unexpected(); err != nil {
			return err
		}
		c, err := r.srv.confirmedFlush(ctx)
		if err == nil && c >= target {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgcdc did not confirm past the last commit %s within 10m (slot at %s)\n%s", fmtLSN(target), fmtLSN(c), r.conn.tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	code, err := r.conn.stop(90 * time.Second)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("pgcdc exited %d on SIGTERM\n%s", code, r.conn.tail())
	}
	r.res.ConnectorStarts = r.conn.starts
	return nil
}

func fmtLSN(l uint64) string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }
