package deliver

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// generation runs one consumer group generation until it ends (a rebalance: its context is
// done), the session stops (ctx), or, with UntilEnd, every assigned partition is done. In every
// case it stops reading, lets the attempts in flight finish (bounded by the shutdown timeout),
// commits what is finished and returns. finished reports that UntilEnd is done.
func (e *Engine) generation(ctx context.Context, endSession context.CancelCauseFunc, gen *kafka.Generation) (finished bool) {
	result := make(chan bool, 1)
	gen.Start(func(genCtx context.Context) {
		result <- e.runGeneration(ctx, genCtx, endSession, gen)
	})
	return <-result
}

func (e *Engine) runGeneration(ctx, genCtx context.Context, endSession context.CancelCauseFunc, gen *kafka.Generation) bool {
	var parts []*partition
	topics := make([]string, 0, len(gen.Assignments))
	for t := range gen.Assignments {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		for _, a := range gen.Assignments[t] {
			end := int64(-1)
			if e.o.UntilEnd {
				end = e.ends[t][a.ID] // a partition created after start-up: 0, nothing to do
			}
			parts = append(parts, newPartition(e, t, a.ID, a.Offset, end))
		}
	}
	e.m.joined(gen.ID, len(parts))
	ev := e.log.Info().Int32("generation", gen.ID).Int("partitions", len(parts))
	for _, p := range parts {
		ev = ev.Int64(p.topic+"/"+itoa(p.id), p.start)
	}
	ev.Msg("joined the consumer group: delivering (start offsets; -2 = first, -1 = last)")

	// hard ends the attempts still in flight once a stop has waited long enough.
	hard, hardCancel := context.WithCancel(context.Background())
	defer hardCancel()
	stop := make(chan struct{})
	var drainUntil atomic.Int64
	var wg sync.WaitGroup
	allDone := make(chan struct{})
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(stop, &drainUntil, hard)
		}()
	}
	go func() {
		wg.Wait()
		close(allDone)
	}()

	c := &committer{e: e, gen: gen, parts: parts, last: map[*partition]int64{}}
	bg, bgCancel := context.WithCancel(context.Background())
	var bgWG sync.WaitGroup
	bgWG.Add(2)
	go func() {
		defer bgWG.Done()
		c.loop(bg)
	}()
	go func() {
		defer bgWG.Done()
		e.lagLoop(bg, parts)
	}()

	grace := e.o.ShutdownTimeout
	select {
	case <-ctx.Done():
		e.log.Info().Dur("shutdown_timeout", grace).Msg("stopping: delivering what was read (retries for half the shutdown timeout), then committing")
	case <-genCtx.Done():
		grace = min(grace, e.o.RebalanceTimeout/2)
		e.log.Info().Int32("generation", gen.ID).Dur("grace", grace).Msg("rebalance: delivering what was read (retries for half the grace), then committing")
	case <-allDone:
	}
	// Half the grace for retries while draining, the rest for the last attempts to finish.
	drainUntil.Store(time.Now().Add(grace / 2).UnixNano())
	close(stop)
	timer := time.AfterFunc(grace, func() {
		e.log.Warn().Dur("after", grace).Msg("attempts still in flight: abandoning them (they are not committed and will be delivered again)")
		hardCancel()
	})
	<-allDone
	timer.Stop()
	bgCancel()
	bgWG.Wait()
	if err := c.commit(); err != nil {
		e.log.Warn().Err(err).Int32("generation", gen.ID).Msg("final offset commit failed: the next owner of these partitions delivers their uncommitted records again")
	} else {
		ev := e.log.Info().Int32("generation", gen.ID)
		for _, p := range parts {
			ev = ev.Int64(p.topic+"/"+itoa(p.id), p.position.Load())
		}
		ev.Msg("generation ended: offsets committed")
	}
	finished := e.o.UntilEnd
	for _, p := range parts {
		finished = finished && p.finished
	}
	if finished {
		endSession(nil) // leave the group rather than join the next generation
	}
	e.m.setWaiting("between generations")
	return finished
}

// committer commits the partitions' finished positions.
type committer struct {
	e     *Engine
	gen   *kafka.Generation
	parts []*partition
	last  map[*partition]int64
	fails int
}

func (c *committer) loop(ctx context.Context) {
	t := time.NewTicker(c.e.o.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = c.commit()
		}
	}
}

func (c *committer) commit() error {
	offsets := map[string]map[int]int64{}
	changed := map[*partition]int64{}
	for _, p := range c.parts {
		pos := p.position.Load()
		if pos < 0 {
			continue
		}
		if last, ok := c.last[p]; ok && last == pos {
			continue
		}
		if offsets[p.topic] == nil {
			offsets[p.topic] = map[int]int64{}
		}
		offsets[p.topic][p.id] = pos
		changed[p] = pos
	}
	if len(changed) == 0 {
		return nil
	}
	err := c.gen.CommitOffsets(offsets)
	c.e.m.commit(err)
	if err != nil {
		if c.fails++; c.fails == 1 || c.fails%30 == 0 {
			c.e.log.Warn().Err(err).Int("failures", c.fails).Msg("offset commit failed; retrying at the next interval (a rebalance redelivers what is not committed)")
		}
		return err
	}
	c.fails = 0
	for p, pos := range changed {
		c.last[p] = pos
	}
	return nil
}

// lagLoop reads the assigned partitions' log end offsets for the lag metric.
func (e *Engine) lagLoop(ctx context.Context, parts []*partition) {
	if len(parts) == 0 {
		return
	}
	req := map[string][]int{}
	for _, p := range parts {
		req[p.topic] = append(req[p.topic], p.id)
	}
	t := time.NewTicker(e.o.LagInterval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, ends, err := partitionOffsets(rctx, e.admin, req)
		cancel()
		if err == nil {
			for _, p := range parts {
				if end, ok := ends[p.topic][p.id]; ok {
					p.hwm.Store(end)
				}
				if pos := p.position.Load(); pos >= 0 {
					e.m.setLag(p.topic, p.id, p.hwm.Load()-pos)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
