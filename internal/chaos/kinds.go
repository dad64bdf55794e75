package chaos

import (
	"context"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"
)

// Kind is a kind of fault.
type Kind string

// The faults the harness injects (the table below says what each does).
const (
	ConnectorKill      Kind = "connector-kill"
	ConnDrop           Kind = "conn-drop"
	WalsenderTerminate Kind = "walsender-terminate"
	PGRestartFast      Kind = "pg-restart-fast"
	PGRestartImmediate Kind = "pg-restart-immediate"
	BrokerPause        Kind = "broker-pause"
	BrokerRestart      Kind = "broker-restart"
	BrokerKill         Kind = "broker-kill"
	LeaderKill         Kind = "leader-kill"
	LeaderFreeze       Kind = "leader-freeze"
	RollingRestart     Kind = "rolling-restart"
	ISRLoss            Kind = "isr-loss"
	TakeoverKill       Kind = "takeover-kill"
	TakeoverFreeze     Kind = "takeover-freeze"
)

// Class says how costly a kind is; the goal for a 60-minute run is at least 30 of each heavy
// kind among at least 1,000 faults.
type Class string

const (
	Cheap Class = "cheap" // seconds; injected often
	Heavy Class = "heavy" // a server stops or a broker set rolls
	Extra Class = "extra" // cluster faults of their own tests (below min ISR, a frozen leader), also mixed in
)

// lane is what a fault disturbs. Faults of one lane never overlap (each recovers before the lane's
// next); faults of different lanes do, so the run also exercises their interleavings.
type lane string

const (
	laneConnector lane = "connector" // the pgcdc process and its connections
	lanePostgres  lane = "postgres"  // the PostgreSQL server
	laneKafka     lane = "kafka"     // the brokers
)

// kindSpec is one row of the fault table.
type kindSpec struct {
	kind   Kind
	class  Class
	group  string // the heavy kind of the goal it counts toward ("" for cheap and extra kinds)
	lane   lane
	weight int // share of its lane's turns (smooth weighted round robin)
	inject func(r *run, ctx context.Context, f *Fault) error
	about  string
}

// needsStandby: the kind acts on the standby pair (Options.Standby).
func (s *kindSpec) needsStandby() bool { return s.group == groupStandby }

// The heavy kinds of the goal (at least 30 of each in a 60-minute run); a heavy fault kind counts
// toward one of them.
const (
	groupBroker  = "broker kill/restart"
	groupLeader  = "leader kill"
	groupRolling = "rolling restart"
	groupPG      = "PostgreSQL restart"
	groupStandby = "standby takeover"
)

// faultTable lists every kind of fault. A new kind (e.g. the standby takeover) is one row here and
// one inject function: the lanes schedule it, the report and the verification need nothing more. Its
// Floor and Ceil must bound the transactions it may make pgcdc send again.
var faultTable = []kindSpec{
	{ConnectorKill, Cheap, "", laneConnector, 3, (*run).killConnector,
		"SIGKILL of pgcdc, started again after up to 2 s"},
	{ConnDrop, Cheap, "", laneConnector, 2, (*run).dropConnections,
		"every TCP connection of pgcdc (to PostgreSQL and to the brokers) destroyed at once (ss -K; as root), else its PostgreSQL backends terminated"},
	{WalsenderTerminate, Cheap, "", lanePostgres, 2, (*run).terminateWalsender,
		"pg_terminate_backend of the walsender holding the slot"},
	{PGRestartFast, Heavy, groupPG, lanePostgres, 1, (*run).restartPostgres,
		"PostgreSQL stopped in fast mode (shutdown checkpoint) and started"},
	{PGRestartImmediate, Heavy, groupPG, lanePostgres, 1, (*run).restartPostgres,
		"PostgreSQL stopped in immediate mode (no checkpoint: crash recovery, the slot may rewind) and started"},
	{BrokerPause, Cheap, "", laneKafka, 2, (*run).pauseBroker,
		"a random broker frozen (SIGSTOP) for 0.5 to 3 s, below the write timeout, then thawed"},
	{BrokerRestart, Heavy, groupBroker, laneKafka, 2, (*run).restartBroker,
		"a random broker stopped cleanly (SIGTERM: controlled shutdown), down up to 2 s, started"},
	{BrokerKill, Heavy, groupBroker, laneKafka, 2, (*run).restartBroker,
		"a random broker killed (SIGKILL), down up to 2 s, started"},
	{LeaderKill, Heavy, groupLeader, laneKafka, 2, (*run).killLeader,
		"the leader of the busiest partition killed (SIGKILL), started once leadership moved"},
	{LeaderFreeze, Extra, "", laneKafka, 1, (*run).freezeLeader,
		"the leader of the busiest partition frozen (SIGSTOP) past the write timeout and the session timeout (leadership moves), then thawed"},
	{RollingRestart, Heavy, groupRolling, laneKafka, 2, (*run).rollingRestart,
		"every broker in turn stopped cleanly (controlled shutdown) and started, the cluster whole again before the next"},
	{ISRLoss, Extra, "", laneKafka, 1, (*run).loseISR,
		"two of three brokers down (below min.insync.replicas): pgcdc must confirm nothing new until they are back"},
	{TakeoverKill, Heavy, groupStandby, laneConnector, 1, (*run).takeoverKill,
		"(-standby) SIGKILL of the active pgcdc: the standby takes over; the killed one is started again as the standby"},
	{TakeoverFreeze, Heavy, groupStandby, laneConnector, 1, (*run).takeoverFreeze,
		"(-standby) SIGSTOP of the active pgcdc: the standby takes over after ha.takeover_after (3 s); thawed, the old one stands by"},
}

// AllKinds lists every fault kind, in the fault table's order.
var AllKinds = func() []Kind {
	out := make([]Kind, len(faultTable))
	for i, s := range faultTable {
		out[i] = s.kind
	}
	return out
}()

func specOK(k Kind) *kindSpec {
	for i := range faultTable {
		if faultTable[i].kind == k {
			return &faultTable[i]
		}
	}
	return nil
}

func spec(k Kind) *kindSpec {
	if s := specOK(k); s != nil {
		return s
	}
	return &kindSpec{kind: k, class: "?"}
}

func kindOrder(k Kind) int {
	for i, s := range faultTable {
		if s.kind == k {
			return i
		}
	}
	return len(faultTable)
}

func kindNames() []string {
	var out []string
	for _, s := range faultTable {
		out = append(out, string(s.kind))
	}
	return out
}

// KindHelp describes every kind, one line each (for the command's -h).
func KindHelp() string {
	var b strings.Builder
	for _, s := range faultTable {
		class := string(s.class)
		if s.group != "" {
			class += " (" + s.group + ")"
		}
		fmt.Fprintf(&b, "  %-21s %-34s %s\n", s.kind, class, s.about)
	}
	return b.String()
}

// faultPhase runs one goroutine per lane that has kinds to inject, until the phase is over, and
// returns the first failure (a fault that could not be injected or did not recover, a writer that
// failed, pgcdc ending on its own).
func (r *run) faultPhase(ctx context.Context, werr <-chan error) error {
	lanes := map[lane][]*kindSpec{}
	for _, k := range r.opts.Kinds {
		s := spec(k)
		lanes[s.lane] = append(lanes[s.lane], s)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.phaseStart = time.Now()
	var wg sync.WaitGroup
	names := make([]string, 0, len(lanes))
	for l := range lanes {
		names = append(names, string(l))
	}
	sort.Strings(names)
	for i, name := range names {
		kinds := lanes[lane(name)]
		r.mu.Lock()
		rng := mrand.New(mrand.NewPCG(r.rng.Uint64(), uint64(i)))
		r.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.runLane(ctx, lane(name), kinds, rng); err != nil {
				cancel(err)
			}
		}()
	}
	// The watcher: a failed writer or a pgcdc that ended on its own stops every lane.
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-werr:
				cancel(err)
				return
			case <-time.After(250 * time.Millisecond):
				err := r.conn.supervise()
				if err == nil {
					err = r.conn.unexpected()
				}
				if err != nil {
					cancel(err)
					return
				}
			}
		}
	}()
	wg.Wait()
	r.res.FaultPhase = time.Since(r.phaseStart)
	if context.Cause(ctx) == nil { // the lanes are done: let the last faults recover
		if err := r.waitWatchers(); err != nil {
			cancel(err)
		}
	}
	cancel(nil)
	<-watchDone
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if err := r.conn.unexpected(); err != nil {
		return err
	}
	r.res.Shortfall = r.shortfall()
	return nil
}

// lagging reports whether kind s is behind what the run must have injected by the fraction frac of
// Duration (1: by the end): at least MinEach of every kind, at least MinHeavy of every heavy group;
// both at least one from the start, then in proportion. r.mu must be held.
func (r *run) lagging(s *kindSpec, frac float64) bool { return r.deficit(s, frac) > 0 }

// deficit is how many faults kind s (or its heavy group) is behind at the fraction frac of Duration.
func (r *run) deficit(s *kindSpec, frac float64) int {
	due := func(n int) int { return min(max(int(math.Ceil(float64(n)*frac)), 1), n) }
	d := due(r.opts.MinEach) - r.res.kind(s.kind).Count
	if s.class == Heavy {
		d = max(d, due(r.opts.MinHeavy)-r.groupCount(s.group))
	}
	return d
}

// groupCount is the number of faults of a heavy group. r.mu must be held.
func (r *run) groupCount(group string) int {
	n := 0
	for k, st := range r.res.Kinds {
		if spec(k).group == group {
			n += st.Count
		}
	}
	return n
}

// HeavyCounts returns the number of faults per heavy kind of the goal (a group of fault kinds:
// broker kill/restart, leader kill, rolling restart, PostgreSQL restart).
func (r *Result) HeavyCounts() map[string]int {
	out := map[string]int{}
	for k, st := range r.Kinds {
		if s := spec(k); s.class == Heavy {
			out[s.group] += st.Count
		}
	}
	return out
}

// shortfall names the minimums of Options the run did not meet.
func (r *run) shortfall() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var short []string
	if n := len(r.res.Faults); n < r.opts.MinFaults {
		short = append(short, fmt.Sprintf("%d faults, want at least %d", n, r.opts.MinFaults))
	}
	groups := map[string]bool{}
	for _, k := range r.opts.Kinds {
		s := spec(k)
		if n := r.res.kind(k).Count; n < r.opts.MinEach {
			short = append(short, fmt.Sprintf("%d %s faults, want at least %d", n, k, r.opts.MinEach))
		}
		if s.class == Heavy && !groups[s.group] {
			groups[s.group] = true
			if n := r.groupCount(s.group); n < r.opts.MinHeavy {
				short = append(short, fmt.Sprintf("%d %s faults, want at least %d", n, s.group, r.opts.MinHeavy))
			}
		}
	}
	if len(short) == 0 {
		return ""
	}
	return fmt.Sprintf("in %s: %s", r.res.FaultPhase.Round(time.Second), strings.Join(short, ", "))
}

// phaseOver reports whether the lane may stop: Duration has passed and every minimum is met, or
// MaxDuration has passed.
func (r *run) phaseOver(kinds []*kindSpec) bool {
	elapsed := time.Since(r.phaseStart)
	if elapsed >= r.opts.MaxDuration {
		return true
	}
	if elapsed < r.opts.Duration {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.res.Faults) < r.opts.MinFaults || !r.largestDone.Load() {
		return false
	}
	for _, s := range kinds {
		if r.lagging(s, 1) {
			return false
		}
	}
	return true
}

// runLane injects the lane's kinds one after the other. Before a fault it waits (up to a minute)
// until the slot has moved since the lane's previous fault began, so that faults cannot keep pgcdc
// from ever finishing a large transaction; after it, a watcher measures the fault's recovery (the
// slot passing the WAL position at its end) and stall, and the lane goes on once the fault has
// recovered or RecoveryWait has passed, whichever is first, so that faults also hit recoveries.
func (r *run) runLane(ctx context.Context, l lane, kinds []*kindSpec, rng *mrand.Rand) error {
	credit := make([]int, len(kinds)) // smooth weighted round robin
	for i := range credit {
		credit[i] = rng.IntN(1 + kinds[i].weight)
	}
	var since uint64 // the slot's position when the lane's previous fault began
	for !r.phaseOver(kinds) {
		gap := r.opts.GapMin + time.Duration(rng.Int64N(int64(r.opts.GapMax-r.opts.GapMin)+1))
		if err := sleepCtx(ctx, gap); err != nil {
			return nil
		}
		if err := r.mon.waitProgress(ctx, since, time.Minute); err != nil {
			return nil
		}
		s := r.pick(kinds, credit)
		f := Fault{Kind: s.kind, At: time.Now(), Copies: 1}
		if last, ok, _ := r.mon.last(); ok {
			since = last.confirmed
		}
		err := s.inject(r, ctx, &f)
		f.Took = time.Since(f.At)
		if ctx.Err() != nil {
			return nil // another lane failed, or the run was cancelled
		}
		if err == nil {
			f.Target, err = r.srv.walInsert(ctx)
		}
		if err != nil {
			return fmt.Errorf("%s lane, %s fault: %w", l, s.kind, err)
		}
		n := r.record(f)
		r.logf("chaos: fault %d at +%s: %s (%s): %s; duplicate window (%s, %s]", n,
			f.At.Sub(r.phaseStart).Round(time.Second), f.Kind, f.Took.Round(time.Millisecond), f.Evidence, fmtLSN(f.Floor), fmtLSN(f.Ceil))
		done := r.watchRecovery(n, f)
		select {
		case <-ctx.Done():
			return nil
		case <-done:
		case <-time.After(r.opts.RecoveryWait):
		}
	}
	return nil
}

// watchRecovery measures fault n's recovery and stall in a goroutine the run waits for (see
// waitWatchers); the channel is closed once the fault has recovered (or failed to).
func (r *run) watchRecovery(n int, f Fault) <-chan struct{} {
	done := make(chan struct{})
	r.watchers.Add(1)
	go func() {
		defer r.watchers.Done()
		defer close(done)
		recovery, stall, err := r.mon.waitRecovered(r.watchCtx, r.conn, f.At, f.Target, 10*time.Minute)
		if err != nil {
			if r.watchCtx.Err() == nil {
				r.mu.Lock()
				r.watchErr = errors.Join(r.watchErr, fmt.Errorf("fault %d (%s) did not recover: %w", n, f.Kind, err))
				r.mu.Unlock()
			}
			return
		}
		r.recovered(n-1, recovery, stall)
		if spec(f.Kind).lane == laneKafka {
			// Failed attempts that started during the fault end up to a write timeout after it.
			end := f.At.Add(f.Took + r.opts.WriteTimeout + 2*monitorEvery)
			select {
			case <-r.watchCtx.Done():
			case <-time.After(time.Until(end)):
			}
			r.mu.Lock()
			r.res.Faults[n-1].Copies = max(r.res.Faults[n-1].Copies, r.mon.failedWrites(f.At, end))
			r.mu.Unlock()
		}
	}()
	return done
}

// waitWatchers waits until every fault has recovered and returns the failures.
func (r *run) waitWatchers() error {
	r.watchers.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.watchErr
}

// pick chooses the lane's next kind: among the kinds furthest behind the pace their minimums ask for
// (see deficit), else among all, by smooth weighted round robin.
func (r *run) pick(kinds []*kindSpec, credit []int) *kindSpec {
	frac := math.Min(1, float64(time.Since(r.phaseStart))/float64(r.opts.Duration))
	r.mu.Lock()
	deficits := make([]int, len(kinds))
	most := 0
	for i, s := range kinds {
		deficits[i] = r.deficit(s, frac)
		most = max(most, deficits[i])
	}
	r.mu.Unlock()
	best, total := -1, 0
	for i, s := range kinds {
		if most > 0 && deficits[i] < most { // when some kind is behind, only the furthest behind
			continue
		}
		credit[i] += s.weight
		total += s.weight
		if best < 0 || credit[i] > credit[best] {
			best = i
		}
	}
	credit[best] -= total
	return kinds[best]
}

// record appends a fault and returns its number (1-based).
func (r *run) record(f Fault) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Faults = append(r.res.Faults, f)
	r.res.kind(f.Kind).Count++
	return len(r.res.Faults)
}

func (r *run) recovered(i int, recovery, stall time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := &r.res.Faults[i]
	f.Recovery, f.Stall = recovery, stall
	s := r.res.kind(f.Kind)
	s.LongestRecovery = max(s.LongestRecovery, recovery)
	s.LongestStall = max(s.LongestStall, stall)
}

// sleepCtx sleeps d unless ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
