package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// The Kafka faults. Each starts from a whole cluster (every broker up, every replica in sync) and ends
// once it is whole again. Its duplicate window runs from the slot's confirmed_flush_lsn before the
// fault (floor) to the WAL position at its end (ceiling): until the in-sync replica sets have settled,
// a write can time out after the leader appended it (waiting for a replica that is gone), and a
// shrinking ISR can then commit it while pgcdc retries it. Whatever ends a fault early (the run failing), the brokers are thawed and
// started again, so a shared cluster is left whole.

// whole waits until every broker runs and every replica is in sync.
func (r *run) whole(ctx context.Context) error {
	return r.srv.kafka.WaitHealthy(ctx, 3*time.Minute)
}

// restore thaws and starts every broker that is frozen or down (with a context of its own: it also
// runs when the fault's context has ended).
func (r *run) restore() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, b := range r.srv.kafka.Brokers {
		_ = b.Resume()
		if b.Exited() {
			if err := b.Start(ctx); err != nil {
				r.problem("restore broker %d: %v", b.NodeID, err)
			}
		}
	}
}

// prepare waits for a whole cluster and returns the slot's position: the floor of the fault's window.
func (r *run) prepare(ctx context.Context, f *Fault) error {
	if err := r.whole(ctx); err != nil {
		return err
	}
	var err error
	f.Floor, err = r.srv.confirmedFlush(ctx)
	return err
}

// pauseBroker freezes a random broker for 0.5 to 3 s (below the write timeout and the session
// timeout: a slow broker, not a dead one); counted when /proc showed the process stopped.
func (r *run) pauseBroker(ctx context.Context, f *Fault) error {
	defer r.restore()
	if err := r.prepare(ctx, f); err != nil {
		return err
	}
	b := r.srv.kafka.Brokers[r.intN(len(r.srv.kafka.Brokers))]
	frozen := time.Duration(500+r.intN(2500)) * time.Millisecond
	state, err := freeze(b, frozen, ctx)
	if err != nil {
		return err
	}
	f.Evidence = fmt.Sprintf("broker %d (pid %d) frozen by SIGSTOP (/proc state %s) for %s, then SIGCONT (state now %s)", b.NodeID, b.PID(), state, frozen.Round(time.Millisecond), procState(b.PID()))
	return r.end(ctx, f)
}

// end waits for a whole cluster and sets the fault's ceiling.
func (r *run) end(ctx context.Context, f *Fault) error {
	if err := r.whole(ctx); err != nil {
		return err
	}
	var err error
	f.Ceil, err = r.srv.walFlush(ctx)
	return err
}

// freeze stops b's JVM for d and thaws it, returning the /proc state seen while it was stopped.
func freeze(b *testenv.Kafka, d time.Duration, ctx context.Context) (string, error) {
	state, err := pause(b)
	if err == nil {
		err = sleepCtx(ctx, d)
	}
	if rerr := b.Resume(); err == nil {
		err = rerr
	}
	return state, err
}

// pause stops b's JVM (SIGSTOP) and waits until /proc shows it stopped.
func pause(b *testenv.Kafka) (string, error) {
	pid := b.PID()
	if err := b.Pause(); err != nil {
		return "", err
	}
	state := ""
	for i := 0; i < 50 && state != "T"; i++ {
		state = procState(pid)
		time.Sleep(20 * time.Millisecond)
	}
	if state != "T" {
		return state, fmt.Errorf("broker %d (pid %d) not stopped after SIGSTOP (state %q)", b.NodeID, pid, state)
	}
	return state, nil
}

// restartBroker stops a random broker (SIGTERM, a controlled shutdown, or SIGKILL for broker-kill),
// leaves it down for up to 2 s and starts it again; counted when it runs under a new pid and the
// cluster is whole again.
func (r *run) restartBroker(ctx context.Context, f *Fault) error {
	defer r.restore()
	if err := r.prepare(ctx, f); err != nil {
		return err
	}
	b := r.srv.kafka.Brokers[r.intN(len(r.srv.kafka.Brokers))]
	how, err := r.stopBroker(ctx, b, f.Kind == BrokerKill)
	if err != nil {
		return err
	}
	down := time.Duration(r.intN(2000)) * time.Millisecond
	if err := sleepCtx(ctx, down); err != nil {
		return err
	}
	oldPID := b.PID()
	if err := r.startBroker(ctx, b); err != nil {
		return err
	}
	f.Evidence = fmt.Sprintf("broker %d (pid %d) %s, down %s, started as pid %d, cluster whole again", b.NodeID, oldPID, how, down.Round(time.Millisecond), b.PID())
	return r.end(ctx, f)
}

// stopBroker stops b by SIGKILL (kill) or SIGTERM and says how it died.
func (r *run) stopBroker(ctx context.Context, b *testenv.Kafka, kill bool) (string, error) {
	pid := b.PID()
	if kill {
		b.Kill()
	} else {
		b.Stop()
	}
	ws, ok := b.WaitStatus()
	switch {
	case !ok:
		return "", fmt.Errorf("broker %d (pid %d) still running after the stop", b.NodeID, pid)
	case kill && !(ws.Signaled() && ws.Signal() == syscall.SIGKILL):
		return "", fmt.Errorf("broker %d (pid %d): wait status %#x does not say SIGKILL", b.NodeID, pid, uint32(ws))
	case kill:
		return "killed (wait status: SIGKILL)", nil
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL:
		return "", fmt.Errorf("broker %d (pid %d) did not stop within 30 s of SIGTERM and was killed", b.NodeID, pid)
	}
	return fmt.Sprintf("stopped by SIGTERM (controlled shutdown, exit status %d)", ws.ExitStatus()), nil
}

// startBroker starts b and waits for a whole cluster.
func (r *run) startBroker(ctx context.Context, b *testenv.Kafka) error {
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := b.Start(sctx); err != nil {
		return fmt.Errorf("broker %d did not come back: %w", b.NodeID, err)
	}
	return r.whole(ctx)
}

// topics are the run's topics.
func (r *run) topics() []string {
	out := []string{r.prefix + ".public.chaos_ledger"}
	for _, t := range tables {
		out = append(out, r.prefix+".public."+t.name)
	}
	return out
}

// busiest returns the partition of the run's topics that took the most records in one second, and its
// leader, waiting (up to a minute) for one that takes records at all.
func (r *run) busiest(ctx context.Context) (testenv.PartitionState, int64, error) {
	for attempt := 0; ; attempt++ {
		p, rate, err := r.busiestOnce(ctx)
		if err != nil || rate > 0 || attempt == 60 {
			return p, rate, err
		}
	}
}

func (r *run) busiestOnce(ctx context.Context) (testenv.PartitionState, int64, error) {
	ends := func() (map[[2]any]int64, []testenv.PartitionState, error) {
		parts, err := r.srv.kafka.Partitions(ctx, r.topics()...)
		if err != nil {
			return nil, nil, err
		}
		out := map[[2]any]int64{}
		for _, p := range parts {
			if p.Leader < 0 {
				return nil, nil, fmt.Errorf("%s partition %d has no leader", p.Topic, p.Partition)
			}
			conn, err := kafka.DialLeader(ctx, "tcp", r.srv.kafka.Broker(p.Leader).Addr(), p.Topic, p.Partition)
			if err != nil {
				return nil, nil, err
			}
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			end, err := conn.ReadLastOffset()
			conn.Close()
			if err != nil {
				return nil, nil, err
			}
			out[[2]any{p.Topic, p.Partition}] = end
		}
		return out, parts, nil
	}
	before, _, err := ends()
	if err != nil {
		return testenv.PartitionState{}, 0, err
	}
	if err := sleepCtx(ctx, time.Second); err != nil {
		return testenv.PartitionState{}, 0, err
	}
	after, parts, err := ends()
	if err != nil {
		return testenv.PartitionState{}, 0, err
	}
	if len(parts) == 0 {
		return testenv.PartitionState{}, 0, errors.New("the run's topics have no partitions")
	}
	key := func(p testenv.PartitionState) [2]any { return [2]any{p.Topic, p.Partition} }
	best := 0
	for i, p := range parts {
		rate, bestRate := after[key(p)]-before[key(p)], after[key(parts[best])]-before[key(parts[best])]
		if rate > bestRate || (rate == bestRate && after[key(p)] > after[key(parts[best])]) {
			best = i
		}
	}
	return parts[best], after[key(parts[best])] - before[key(parts[best])], nil
}

// waitLeaderMoved waits until partition p has a leader other than old.
func (r *run) waitLeaderMoved(ctx context.Context, p testenv.PartitionState, old int, limit time.Duration) (int, time.Duration, error) {
	start := time.Now()
	deadline := start.Add(limit)
	for {
		l, err := r.srv.kafka.Leader(ctx, p.Topic, p.Partition)
		if err == nil && l >= 0 && l != old {
			return l, time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("%s partition %d: leadership did not move off broker %d within %s (leader %d, %v)", p.Topic, p.Partition, old, limit, l, err)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return 0, 0, err
		}
	}
}

// busiestLeader waits for a whole cluster (setting the fault's floor) and returns the busiest
// partition, its records per second and its leader.
func (r *run) busiestLeader(ctx context.Context, f *Fault) (testenv.PartitionState, int64, *testenv.Kafka, error) {
	if err := r.prepare(ctx, f); err != nil {
		return testenv.PartitionState{}, 0, nil, err
	}
	p, rate, err := r.busiest(ctx)
	if err != nil {
		return p, 0, nil, err
	}
	return p, rate, r.srv.kafka.Broker(p.Leader), nil
}

// killLeader kills (SIGKILL) the leader of the busiest partition, waits until another broker leads it
// (the controller fences the dead one after broker.session.timeout.ms), and starts it again.
func (r *run) killLeader(ctx context.Context, f *Fault) error {
	defer r.restore()
	p, rate, b, err := r.busiestLeader(ctx, f)
	if err != nil {
		return err
	}
	oldPID := b.PID()
	how, err := r.stopBroker(ctx, b, true)
	if err != nil {
		return err
	}
	newLeader, moved, err := r.waitLeaderMoved(ctx, p, b.NodeID, 2*time.Minute)
	if err != nil {
		return err
	}
	if err := r.startBroker(ctx, b); err != nil {
		return err
	}
	f.Evidence = fmt.Sprintf("%s partition %d (%d records/s) was led by broker %d (pid %d): %s; broker %d led it %s later; started as pid %d, cluster whole again",
		p.Topic, p.Partition, rate, b.NodeID, oldPID, how, newLeader, moved.Round(time.Millisecond), b.PID())
	return r.end(ctx, f)
}

// freezeLeader freezes (SIGSTOP) the leader of the busiest partition past pgcdc's write timeout (the
// produce request times out) and past the controller's session timeout (it fences the silent broker
// and another one leads the partition), then thaws it; counted when /proc showed it stopped and the
// leadership moved while it was.
func (r *run) freezeLeader(ctx context.Context, f *Fault) error {
	defer r.restore()
	p, rate, b, err := r.busiestLeader(ctx, f)
	if err != nil {
		return err
	}
	pid := b.PID()
	frozen := r.opts.WriteTimeout + time.Duration(2000+r.intN(4000))*time.Millisecond
	began := time.Now()
	if _, err := pause(b); err != nil {
		return err
	}
	newLeader, moved, err := r.waitLeaderMoved(ctx, p, b.NodeID, frozen)
	if err != nil {
		return fmt.Errorf("while broker %d was frozen: %w", b.NodeID, err)
	}
	if err := sleepCtx(ctx, frozen-time.Since(began)); err != nil {
		return err
	}
	if err := b.Resume(); err != nil {
		return err
	}
	f.Evidence = fmt.Sprintf("%s partition %d (%d records/s) was led by broker %d (pid %d): frozen by SIGSTOP (/proc state T) for %s (write timeout %s); broker %d led the partition %s into the freeze; thawed, cluster whole again",
		p.Topic, p.Partition, rate, b.NodeID, pid, frozen.Round(time.Millisecond), r.opts.WriteTimeout, newLeader, moved.Round(time.Millisecond))
	return r.end(ctx, f)
}

// rollingRestart stops every broker in turn by SIGTERM (a controlled shutdown: the controller moves
// its partition leaderships away before it exits) and starts it again, waiting for a whole cluster
// before the next; counted when each exited cleanly, led nothing once it was down, and runs under a
// new pid.
func (r *run) rollingRestart(ctx context.Context, f *Fault) error {
	defer r.restore()
	if err := r.prepare(ctx, f); err != nil {
		return err
	}
	brokers := slices.Clone(r.srv.kafka.Brokers)
	f.Copies = len(brokers)
	first := r.intN(len(brokers))
	brokers = append(brokers[first:], brokers[:first]...)
	var steps []string
	for _, b := range brokers {
		led, err := r.ledBy(ctx, b.NodeID)
		if err != nil {
			return err
		}
		oldPID := b.PID()
		how, err := r.stopBroker(ctx, b, false)
		if err != nil {
			return err
		}
		still, err := r.ledBy(ctx, b.NodeID)
		if err != nil {
			return err
		}
		if still != 0 {
			return fmt.Errorf("broker %d is down but still leads %d partitions", b.NodeID, still)
		}
		if err := r.startBroker(ctx, b); err != nil {
			return err
		}
		steps = append(steps, fmt.Sprintf("broker %d (pid %d, led %d partitions) %s, none led by it while down, started as pid %d", b.NodeID, oldPID, led, how, b.PID()))
	}
	f.Evidence = strings.Join(steps, "; ") + "; cluster whole again"
	return r.end(ctx, f)
}

// ledBy counts the partitions (of every topic) broker id leads.
func (r *run) ledBy(ctx context.Context, id int) (int, error) {
	parts, err := r.srv.kafka.Partitions(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range parts {
		if p.Leader == id {
			n++
		}
	}
	return n, nil
}

// loseISR takes two of the three brokers down (each killed or stopped, at random) for longer than the
// write timeout: every partition is below min.insync.replicas, so no acks=all write can succeed. Once
// both are down it commits a marker row in a captured table; the proof that pgcdc waits and confirms
// nothing Kafka did not acknowledge is in the slot: no reading of confirmed_flush_lsn during the
// outage reaches the marker's commit (the writers commit on meanwhile), and pgcdc logs retried writes.
// Then both start again and the fault recovers like any other (the slot passes the marker).
func (r *run) loseISR(ctx context.Context, f *Fault) error {
	defer r.restore()
	if err := r.prepare(ctx, f); err != nil {
		return err
	}
	brokers := slices.Clone(r.srv.kafka.Brokers)
	r.mu.Lock()
	r.rng.Shuffle(len(brokers), func(i, j int) { brokers[i], brokers[j] = brokers[j], brokers[i] })
	r.mu.Unlock()
	down := brokers[:2]
	f.Copies = len(down)
	logFrom := r.conn.mark()
	var hows []string
	for _, b := range down {
		pid := b.PID()
		how, err := r.stopBroker(ctx, b, r.intN(2) == 0)
		if err != nil {
			return err
		}
		hows = append(hows, fmt.Sprintf("broker %d (pid %d) %s", b.NodeID, pid, how))
	}
	outageStart := time.Now()
	marker, err := r.srv.commitMarker(ctx)
	if err != nil {
		return err
	}
	hold := r.opts.WriteTimeout + 6*time.Second
	if err := sleepCtx(ctx, hold-time.Since(outageStart)); err != nil {
		return err
	}
	// The slot is read every monitorEvery; while another lane restarts PostgreSQL it cannot be. The
	// outage lasts until enough readings prove it (at most a minute and a half in all).
	// Likewise until pgcdc tried to write (with the other lanes killing, freezing and restarting
	// it and PostgreSQL, the active process may spend the first seconds starting).
	need := int(hold/monitorEvery) / 4
	proven := func() bool {
		return len(r.mon.between(outageStart, time.Now())) >= need && retriedWrites(r.conn.since(logFrom)) > 0
	}
	for !proven() && time.Since(outageStart) < 90*time.Second {
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	outageEnd := time.Now()
	samples := r.mon.between(outageStart, outageEnd)
	retried := retriedWrites(r.conn.since(logFrom)) // any process: a takeover may come in between
	errs := make([]error, len(down))
	var wg sync.WaitGroup
	for i, b := range down {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
			defer cancel()
			errs[i] = b.Start(sctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("brokers did not come back: %w", err)
	}
	if len(samples) < need {
		return fmt.Errorf("only %d readings of the slot during the %s outage", len(samples), outageEnd.Sub(outageStart).Round(time.Second))
	}
	low, high := samples[0].confirmed, samples[0].confirmed
	for _, s := range samples {
		if s.confirmed >= marker {
			return fmt.Errorf("the slot was confirmed to %s at +%s into the outage, past the marker committed while two brokers were down (commit end %s): pgcdc confirmed what Kafka could not have acknowledged",
				fmtLSN(s.confirmed), s.at.Sub(outageStart).Round(time.Millisecond), fmtLSN(marker))
		}
		low, high = min(low, s.confirmed), max(high, s.confirmed)
	}
	if retried == 0 {
		return errors.New("pgcdc logged no retried write (nor a retried producer session start) while two brokers were down")
	}
	f.Evidence = fmt.Sprintf("%s; for %s the slot stayed below the marker committed then (commit end %s) in %d readings (between %s and %s), while pgcdc retried writes (%d warnings); both started, cluster whole again",
		strings.Join(hows, ", "), outageEnd.Sub(outageStart).Round(time.Millisecond), fmtLSN(marker), len(samples), fmtLSN(low), fmtLSN(high), retried)
	return r.end(ctx, f)
}

// retriedWrites counts pgcdc's log lines saying it could not write to Kafka and tries again: a
// batch write, or (ha.enabled) the start of its producer session, which needs the transaction
// coordinator, itself below min.insync.replicas when two brokers are down.
func retriedWrites(log string) int {
	return strings.Count(log, "kafka write failed; retrying") + strings.Count(log, "kafka InitProducerID failed; retrying")
}
