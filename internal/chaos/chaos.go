package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// Options configure a run. Zero values take the defaults noted.
type Options struct {
	Duration time.Duration // fault phase; default 5m
	// MaxDuration bounds the fault phase when the minimums below are not met by Duration; default
	// twice Duration. A run that ends with a minimum unmet fails (Result.Shortfall).
	MaxDuration time.Duration
	MinFaults   int // at least this many faults in all; default 8
	MinEach     int // every kind at least this many times; default 1
	// MinHeavy is the least number of faults of each heavy group (broker kill/restart, leader kill,
	// rolling restart, PostgreSQL restart: the heavy kinds of the project's goal); default MinEach.
	MinHeavy int
	// GapMin and GapMax bound the pause a lane takes between two of its faults, drawn uniformly;
	// defaults 0.3 s and 1.5 s.
	GapMin, GapMax time.Duration
	// RecoveryWait is the longest a lane waits for its fault to recover before the next one (the
	// recovery is still measured, and must come within 10 minutes); default 5 s.
	RecoveryWait time.Duration
	Kinds        []Kind // default AllKinds
	Seed         uint64 // default: from the clock
	Writers      int    // concurrent writer connections; default 2
	RowsPerS     int    // average rows per second across writers; default 1500
	MaxTxn       int    // largest transaction; default 50,000 rows
	Partitions   int    // partitions per topic; default 3
	Streaming    bool   // postgres.streaming (protocol v2 with the local spool)
	// Compression is pgcdc's kafka.compression ("": pgcdc's default, lz4). A 60-minute run writes
	// tens of GB into three replicas of every topic; compression keeps that within a small disk.
	Compression string
	// Standby runs two pgcdc processes with ha.enabled (one active, one standby) and enables the
	// takeover kinds; the other kinds then act on whichever process is active.
	Standby bool
	// WriteTimeout is pgcdc's kafka.write_timeout (the produce request timeout); default 10 s.
	WriteTimeout time.Duration
	// Cluster is a running three-broker cluster to use (it must be healthy; the run leaves it so and
	// deletes its topics at the end). Nil: the run starts its own and stops it at the end.
	Cluster *testenv.KafkaCluster
	WorkDir string // logs (pgcdc output, server logs on failure); default a temp dir
	Binary  string // pgcdc binary; built (without -race) when empty
	Logf    func(format string, args ...any)
}

func (o *Options) defaults() {
	if o.Duration <= 0 {
		o.Duration = 5 * time.Minute
	}
	if o.MaxDuration < o.Duration {
		o.MaxDuration = 2 * o.Duration
	}
	if o.MinFaults <= 0 {
		o.MinFaults = 8
	}
	if o.MinEach <= 0 {
		o.MinEach = 1
	}
	if o.MinHeavy < o.MinEach {
		o.MinHeavy = o.MinEach
	}
	if o.GapMin <= 0 {
		o.GapMin = 300 * time.Millisecond
	}
	if o.GapMax < o.GapMin {
		o.GapMax = max(1500*time.Millisecond, o.GapMin)
	}
	if o.RecoveryWait <= 0 {
		o.RecoveryWait = 5 * time.Second
	}
	if len(o.Kinds) == 0 {
		for _, k := range AllKinds {
			if o.Standby || !spec(k).needsStandby() {
				o.Kinds = append(o.Kinds, k)
			}
		}
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
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Fault is one injected fault with its evidence, its duplicate window and what it cost.
type Fault struct {
	Kind     Kind
	At       time.Time
	Took     time.Duration // injection, until the fault was over (servers back, pgcdc running)
	Evidence string
	// Floor and Ceil bound the transactions this fault may make pgcdc send again: those whose commit
	// end LSN is in (Floor, Ceil].
	Floor, Ceil uint64
	// Copies is how many extra copies of one transaction the fault may cause: 1, or for a Kafka
	// fault the number of pgcdc's write attempts that failed during it (each may have been taken by a
	// broker before it failed: a timeout, a cut connection, NOT_ENOUGH_REPLICAS_AFTER_APPEND) and at
	// least one per broker it takes down.
	Copies int
	// Target is the server's WAL insert position once the fault was over; the fault has recovered
	// when the slot's confirmed_flush_lsn reaches it.
	Target uint64
	// Recovery is the time from the fault's start until it recovered; Stall the longest time within
	// it during which the slot did not advance while changes were pending.
	Recovery, Stall time.Duration
}

// KindStats sums up the faults of one kind.
type KindStats struct {
	Count           int
	Lost            int // lost events of transactions inside this kind's windows (must be 0)
	Duplicates      int // extra copies attributed to this kind
	Window          int // events of the transactions inside this kind's windows: the most it may re-send
	LongestStall    time.Duration
	LongestRecovery time.Duration
}

// Result is what a run observed.
type Result struct {
	Seed       uint64
	Duration   time.Duration // whole run, set-up to verification
	FaultPhase time.Duration
	Faults     []Fault
	Shortfall  string // a minimum of Options not met by MaxDuration

	TxnsCommitted   int // per the ledger
	TxnsRolledBack  int // deliberate rollbacks
	TxnsFailed      int // failed by a fault before or during COMMIT
	FailedCommitted int // of those, committed after all (settled by the ledger)
	LargestTxn      int // rows
	// LargestPlanned is the largest transaction the workload aims at: Options.MaxTxn rows, at most
	// one per key writer 0 owns (a random share of the keys).
	LargestPlanned int

	EventsWritten   int // change events the committed transactions must produce (data + ledger rows)
	TombstonesWant  int // deletes (each must be followed by a tombstone)
	RecordsConsumed int // every record read back, duplicates and tombstones included
	EventsConsumed  int // change events read back (not tombstones), duplicates included

	Lost              int // committed changes missing from Kafka
	Unexpected        int // events of no committed change (e.g. of a rolled-back transaction)
	MissingTombstones int
	Duplicates        int // extra copies of change events
	Kinds             map[Kind]*KindStats
	Unexplained       int      // duplicates outside every fault window that could explain them
	OrderViolations   int      // keys whose events first appear out of commit order
	KeysChecked       int      // keys whose last event was compared with PostgreSQL
	StateMismatches   int      // keys whose last event differs from the row
	LedgerMismatches  int      // ledger rows and writers' outcomes that disagree
	Problems          []string // the first problems found, for the report
	ConnectorStarts   int
	Takeovers         int // times the standby became the active process (Options.Standby)
	// SupervisorRestarts are the times pgcdc exited 1 during its start-up because a server went away
	// in the middle of it (another lane's fault), and the harness, as a supervisor would, started it
	// again.
	SupervisorRestarts []string
	LogDir             string
}

func (r *Result) kind(k Kind) *KindStats {
	if r.Kinds == nil {
		r.Kinds = map[Kind]*KindStats{}
	}
	s := r.Kinds[k]
	if s == nil {
		s = &KindStats{}
		r.Kinds[k] = s
	}
	return s
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
	if r.OrderViolations != 0 {
		errs = append(errs, fmt.Sprintf("%d keys whose events appear out of commit order", r.OrderViolations))
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
	if r.Shortfall != "" {
		errs = append(errs, r.Shortfall)
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

// Write prints the summary: the run, then one line per fault kind.
func (r *Result) Write(w interface{ Write([]byte) (int, error) }) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("chaos result (seed %d, %s in all, fault phase %s, pgcdc started %d times, logs in %s)",
		r.Seed, r.Duration.Round(time.Second), r.FaultPhase.Round(time.Second), r.ConnectorStarts, r.LogDir)
	rate := 0.0
	if r.FaultPhase > 0 {
		rate = float64(len(r.Faults)) / r.FaultPhase.Minutes()
	}
	p("  faults injected:   %d (%.1f per minute: %.0f in 60 minutes at this rate)", len(r.Faults), rate, rate*60)
	if r.Takeovers > 0 {
		p("  standby takeovers: %d (the standby pgcdc became the active one, after any fault that ended or cut the active one)", r.Takeovers)
	}
	p("  transactions:      %d committed (largest %d rows), %d rolled back, %d cut by a fault (%d of them committed, settled by the ledger)",
		r.TxnsCommitted, r.LargestTxn, r.TxnsRolledBack, r.TxnsFailed, r.FailedCommitted)
	p("  events written:    %d change events (+ %d tombstones due)", r.EventsWritten, r.TombstonesWant)
	p("  events consumed:   %d change events, %d records in all", r.EventsConsumed, r.RecordsConsumed)
	p("  lost:              %d", r.Lost)
	p("  unexpected:        %d    missing tombstones: %d    keys out of commit order: %d", r.Unexpected, r.MissingTombstones, r.OrderViolations)
	p("  duplicates:        %d; outside every fault's bound: %d", r.Duplicates, r.Unexplained)
	p("  final state:       %d keys compared with PostgreSQL, %d mismatches", r.KeysChecked, r.StateMismatches)
	p("  start-up failures: %d (pgcdc exited 1 while starting because a server went away; started again as a supervisor would)", len(r.SupervisorRestarts))
	for i, s := range r.SupervisorRestarts {
		if i == 5 {
			p("    ...")
			break
		}
		p("    %s", s)
	}
	var kinds []Kind
	for k := range r.Kinds {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return kindOrder(kinds[i]) < kindOrder(kinds[j]) })
	p("  %-22s %-6s %6s %5s %22s %14s %17s", "kind", "class", "count", "lost", "duplicates (window)", "longest stall", "longest recovery")
	var heavy []string
	for g, n := range r.HeavyCounts() {
		heavy = append(heavy, fmt.Sprintf("%s %d", g, n))
	}
	sort.Strings(heavy)
	p("  heavy kinds:       %s", strings.Join(heavy, ", "))
	for _, k := range kinds {
		s := r.Kinds[k]
		p("  %-22s %-6s %6d %5d %22s %14s %17s", k, spec(k).class, s.Count, s.Lost, fmt.Sprintf("%d (%d)", s.Duplicates, s.Window),
			s.LongestStall.Round(100*time.Millisecond), s.LongestRecovery.Round(100*time.Millisecond))
	}
	for _, pr := range r.Problems {
		p("  problem: %s", pr)
	}
	if err := r.Err(); err != nil {
		p("  FAILED: %v", err)
	} else {
		p("  OK: nothing lost, order per key kept, every duplicate within its fault's bound, last events equal PostgreSQL")
	}
}

// run is the state of one harness run.
type run struct {
	opts   Options
	rng    *mrand.Rand // the fault lanes' own generators derive from it (under mu)
	res    *Result
	logf   func(format string, args ...any)
	prefix string // topic prefix, unique to the run

	srv  *servers
	conn *connector
	scan *walScanner
	mon  *monitor
	ws   []*writer

	mu         sync.Mutex // guards problems, res.Faults, res.Kinds, watchErr during the fault phase
	problems   []string
	phaseStart time.Time

	watchers sync.WaitGroup  // recovery watchers of the faults
	watchCtx context.Context // ends them when the run fails
	watchErr error

	// largestDone: writer 0 committed its transaction of the largest size (writer.size); the
	// fault phase does not end before it, as it does not before the fault minimums.
	largestDone atomic.Bool
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
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	r := &run{opts: opts, rng: mrand.New(mrand.NewPCG(opts.Seed, 0x9e3779b97f4a7c15)), logf: opts.Logf,
		res: &Result{Seed: opts.Seed}, prefix: "chaos_" + hex.EncodeToString(suffix[:])}
	for _, k := range opts.Kinds {
		if specOK(k) == nil {
			return r.res, fmt.Errorf("unknown fault kind %q (kinds: %s)", k, strings.Join(kindNames(), ", "))
		}
		if specOK(k).needsStandby() && !opts.Standby {
			return r.res, fmt.Errorf("fault kind %q needs a standby pgcdc (Options.Standby, -standby)", k)
		}
		r.res.kind(k)
	}
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
	if r.conn != nil {
		r.res.SupervisorRestarts = r.conn.supervisorRestarts()
		r.res.ConnectorStarts = r.conn.starts
		if len(r.ws) > 0 {
			r.res.LargestPlanned = r.ws[0].largestSize()
		}
		r.res.Takeovers = r.conn.swaps
	}
	return r.res, err
}

func (r *run) run(ctx context.Context) error {
	bin := r.opts.Binary
	if bin == "" {
		var err error
		if bin, err = BuildPgcdc(ctx, r.opts.WorkDir); err != nil {
			return err
		}
	}
	r.logf("chaos: seed %d, fault phase %s, writers %d at %d rows/s, kinds %v, logs in %s", r.opts.Seed, r.opts.Duration, r.opts.Writers, r.opts.RowsPerS, r.opts.Kinds, r.opts.WorkDir)
	srv, err := startServers(ctx, r.opts.Cluster, r.logf)
	if err != nil {
		return err
	}
	r.srv = srv
	defer srv.close(r.prefix)
	if err := srv.setup(ctx); err != nil {
		return err
	}

	r.scan = newWALScanner(srv)
	if err := r.scan.init(ctx); err != nil {
		return err
	}
	r.conn = newConnector(bin, srv, r.prefix, r.opts, r.logf)
	defer r.conn.close()
	if err := r.conn.start(); err != nil {
		return err
	}
	if err := srv.waitActive(ctx, r.conn, 2*time.Minute); err != nil {
		return fmt.Errorf("pgcdc did not start streaming: %w\n%s", err, r.conn.tail())
	}
	if r.opts.Standby {
		if err := r.conn.startStandby(); err != nil {
			return err
		}
		if err := r.conn.waitStandby(ctx, 2*time.Minute); err != nil {
			return err
		}
	}
	r.mon = newMonitor(srv, r.conn)
	mctx, stopMon := context.WithCancel(ctx)
	defer stopMon()
	monDone := make(chan struct{})
	go func() { defer close(monDone); r.mon.loop(mctx) }()
	r.watchCtx = mctx
	defer func() { stopMon(); r.watchers.Wait(); <-monDone }()

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

	ferr := r.faultPhase(ctx, werr)
	stopWriters()
	wg.Wait()
	close(werr)
	for err := range werr {
		ferr = errors.Join(ferr, err)
	}
	if ferr != nil {
		stopScan()
		<-scanDone
		srv.saveLogs(r.opts.WorkDir)
		return ferr
	}
	r.logf("chaos: fault phase over (%d faults in %s); waiting for pgcdc to catch up", len(r.res.Faults), r.res.FaultPhase.Round(time.Second))
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
		err := r.conn.supervise()
		if err == nil {
			err = r.conn.unexpected()
		}
		if err != nil {
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
	if r.opts.Standby { // the standby first: stopping the active one first would hand it the slot
		if code, err := r.conn.stopStandby(90 * time.Second); err != nil || code != 0 {
			return errors.Join(err, fmt.Errorf("the standby pgcdc exited %d on SIGTERM", code))
		}
	}
	code, err := r.conn.stop(90 * time.Second)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("pgcdc exited %d on SIGTERM\n%s", code, r.conn.tail())
	}
	return nil
}

func fmtLSN(l uint64) string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }
