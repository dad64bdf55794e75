package replay

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"
)

// A coordinator replays one topic (one table). Each partition has a reader goroutine feeding a
// queue; the coordinator applies the queues in rounds, one transaction per partition per round,
// the partitions of a round in parallel. Per-key order holds because a key lives on one
// partition and a partition is applied in offset order.
//
// Truncates are the one cross-partition order: a truncate at LSN L must come after every event of
// the table with a smaller LSN, on every partition, and before every event with a greater one.
// While a table has a truncate its ACCESS EXCLUSIVE lock orders it against every other change of
// the table, so on each partition (commit order) the events before it have smaller LSNs and those
// after it greater ones. Hence the rule: an event is applied only once every partition that may
// still hold unread records has been read up to at least its LSN (the frontier), and no queued
// truncate has a smaller LSN; a truncate is applied once every partition is positioned past it.
type coordinator struct {
	e      *engine
	ts     *tableState
	topic  string
	parts  []*partState
	dec    *decoder
	notify chan struct{}
}

type chunk struct {
	msgs []kafka.Message
	hwm  int64
	done bool
	err  error
}

type partState struct {
	id      int
	next    int64 // next offset to apply (what the target has)
	end     int64 // until-end: stop before this offset; -1 when following
	fetched int64 // offset after the last record read
	hwm     int64 // last known high watermark
	done    bool  // every record up to end was read
	ch      chan chunk
	queue   []*prepared
	maxLSN  uint64
	lastLSN uint64
	bytes   int // record bytes held by queue
}

// maxQueue and maxQueueBytes bound what is read ahead per partition (the readers then wait).
const (
	maxQueue      = 50_000
	maxQueueBytes = 32 << 20
)

// atEnd: nothing unread can be known to exist in the partition.
func (p *partState) atEnd() bool { return p.done || p.fetched >= p.hwm }

func (e *engine) listOffsets(ctx context.Context, topic string, parts []int, ts int64) (map[int]int64, error) {
	reqs := make([]kafka.OffsetRequest, len(parts))
	for i, p := range parts {
		reqs[i] = kafka.OffsetRequest{Partition: p, Timestamp: ts}
	}
	res, err := e.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("replay: list the offsets of %s: %w", topic, err)
	}
	out := map[int]int64{}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("replay: offsets of %s partition %d: %w", topic, po.Partition, po.Error)
		}
		switch ts {
		case kafka.FirstOffset:
			out[po.Partition] = po.FirstOffset
		case kafka.LastOffset:
			out[po.Partition] = po.LastOffset
		default:
			out[po.Partition] = -1
			for off := range po.Offsets {
				out[po.Partition] = off
			}
		}
	}
	return out, nil
}

func (e *engine) newCoordinator(ctx context.Context, t topicInfo) (*coordinator, error) {
	var stored map[int]int64
	err := e.db.with(ctx, func(db *pgx.Conn) (err error) { stored, err = e.offsets.load(ctx, db, t.name); return })
	if err != nil {
		return nil, err
	}
	first, err := e.listOffsets(ctx, t.name, t.partitions, kafka.FirstOffset)
	if err != nil {
		return nil, err
	}
	last, err := e.listOffsets(ctx, t.name, t.partitions, kafka.LastOffset)
	if err != nil {
		return nil, err
	}
	var at map[int]int64
	if !e.opts.FromTime.IsZero() {
		if at, err = e.listOffsets(ctx, t.name, t.partitions, e.opts.FromTime.UnixMilli()); err != nil {
			return nil, err
		}
	}
	c := &coordinator{e: e, ts: newTableState(t.name, t.compacted), topic: t.name, dec: newDecoder(e.opts.FlatFieldPrefix), notify: make(chan struct{}, 1)}
	c.dec.topicTable(e.opts.TopicPrefix, t.name) // for flattened rows (flat.go)
	for _, id := range t.partitions {
		p := &partState{id: id, end: -1, hwm: last[id], ch: make(chan chunk, 4)}
		off, ok := stored[id]
		switch {
		case ok:
			if off < first[id] {
				e.log.Warn().Str("topic", t.name).Int("partition", id).Int64("applied_up_to", off).Int64("first_offset", first[id]).
					Msg("records after the target's position were deleted from the topic (retention): the target misses their changes; rebuild it from a fresh database")
				off = first[id]
			}
		case at != nil:
			off = at[id]
			if off < 0 {
				off = last[id]
			}
		default:
			off = first[id]
		}
		p.next, p.fetched = off, off
		if e.opts.UntilEnd {
			p.end = last[id]
			if off >= p.end {
				p.done = true
			} else {
				e.total.Add(p.end - off)
			}
		}
		c.parts = append(c.parts, p)
	}
	e.mu.Lock()
	e.started[t.name] = true
	e.tables = append(e.tables, c.ts)
	e.mu.Unlock()
	return c, nil
}

// read feeds one partition's records to the coordinator.
func (c *coordinator) read(ctx context.Context, p *partState) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: c.e.opts.Brokers, Dialer: c.e.kc.Dialer(), Topic: c.topic, Partition: p.id,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 500 * time.Millisecond, QueueCapacity: 1000,
	})
	defer r.Close()
	send := func(ch chunk) bool {
		select {
		case p.ch <- ch:
		case <-ctx.Done():
			return false
		}
		select {
		case c.notify <- struct{}{}:
		default:
		}
		return true
	}
	if err := r.SetOffset(p.fetched); err != nil {
		send(chunk{err: err})
		return
	}
	var buf []kafka.Message
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() == nil {
				send(chunk{err: fmt.Errorf("replay: read %s partition %d: %w", c.topic, p.id, err)})
			}
			return
		}
		buf = append(buf, m)
		done := p.end >= 0 && m.Offset+1 >= p.end
		if len(buf) >= 1000 || m.Offset+1 >= m.HighWaterMark || done {
			if !send(chunk{msgs: buf, hwm: m.HighWaterMark, done: done}) {
				return
			}
			buf = nil
		}
		if done {
			return
		}
	}
}

func (c *coordinator) run(ctx context.Context) error {
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	for _, p := range c.parts {
		if !p.done {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.read(rctx, p)
			}()
		}
	}
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	for rounds := 0; ; rounds++ {
		if err := c.ingest(ctx); err != nil {
			return err
		}
		segs := c.plan()
		if len(segs) > 0 {
			if err := c.apply(ctx, segs); err != nil {
				return err
			}
			continue
		}
		finished := c.e.opts.UntilEnd
		for _, p := range c.parts {
			if !p.done || len(p.queue) > 0 {
				finished = false
			}
		}
		if finished {
			return nil
		}
		idle.Reset(200 * time.Millisecond)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.notify:
		case <-idle.C:
		}
	}
}

// ingest takes the chunks the readers have delivered, decoding and preparing their records.
func (c *coordinator) ingest(ctx context.Context) error {
	for _, p := range c.parts {
		for len(p.queue) < maxQueue && p.bytes < maxQueueBytes {
			var ch chunk
			select {
			case ch = <-p.ch:
			default:
			}
			if ch.msgs == nil && ch.err == nil && !ch.done {
				break
			}
			if ch.err != nil {
				return ch.err
			}
			for i := range ch.msgs {
				m := &ch.msgs[i]
				ev := &change{partition: p.id, offset: m.Offset, size: len(m.Key) + len(m.Value), msg: m}
				for _, h := range m.Headers {
					switch h.Key {
					case headerOldKey:
						ev.oldKey = true
					case headerNewKey:
						ev.newKey = true
					}
				}
				var pr *prepared
				if err := c.dec.decode(m.Key, m.Value, p.lastLSN, ev); err != nil {
					err = fmt.Errorf("replay: topic %s partition %d offset %d: %w", c.topic, p.id, m.Offset, err)
					if c.e.parker == nil {
						return err
					}
					pr = &prepared{change: ev, park: err.Error()} // malformed: parked when its segment commits
					ev.lsn = p.lastLSN
				} else if pr, err = c.e.prepare(ctx, c.ts, ev); err != nil {
					return err
				}
				p.queue = append(p.queue, pr)
				p.bytes += ev.size
				p.lastLSN = ev.lsn
				p.maxLSN = max(p.maxLSN, ev.lsn)
				p.fetched = m.Offset + 1
			}
			p.hwm = max(p.hwm, ch.hwm)
			if ch.done {
				p.done = true
			}
		}
	}
	return nil
}

type segment struct {
	p    *partState
	recs []*prepared
}

// plan picks what can be applied now (see the type's comment).
func (c *coordinator) plan() []segment {
	frontier := uint64(math.MaxUint64)
	trunc := uint64(math.MaxUint64)
	for _, p := range c.parts {
		if !p.atEnd() {
			frontier = min(frontier, p.maxLSN)
		}
		for _, r := range p.queue {
			if r.op == 't' {
				trunc = min(trunc, r.lsn)
				break
			}
		}
	}
	var segs []segment
	for _, p := range c.parts {
		n := 0
		for n < len(p.queue) && n < c.e.opts.BatchSize {
			r := p.queue[n]
			if r.op == 't' || r.carry || (r.savesRow && n > 0) || r.lsn > frontier || (trunc != math.MaxUint64 && r.lsn >= trunc) {
				break
			}
			n++
		}
		if n > 0 {
			segs = append(segs, segment{p: p, recs: p.queue[:n]})
		}
	}
	segs = append(segs, c.readyCarries()...)
	if len(segs) > 0 || trunc == math.MaxUint64 {
		return segs
	}
	// Only truncates can move: apply the first one once every partition is past it.
	var holder *partState
	for _, p := range c.parts {
		switch {
		case len(p.queue) == 0:
			if !p.atEnd() {
				return nil
			}
		case p.queue[0].op == 't' && p.queue[0].lsn == trunc:
			if holder == nil {
				holder = p
			}
		case p.queue[0].lsn > trunc:
		default:
			return nil // still events before the truncate to read or apply
		}
	}
	if holder == nil {
		return nil
	}
	return []segment{{p: holder, recs: holder.queue[:1]}}
}

// readyCarries returns the primary-key changes whose new row takes unchanged TOAST values from the
// old row (prepared.carry) and can be applied now: the delete of the old key (same source.lsn L,
// possibly on another partition) saved the old row when it was applied, so every other partition
// must have applied everything up to L: its next record is past L, or it has nothing left that is
// not applied and has been read beyond L (or to its end).
func (c *coordinator) readyCarries() []segment {
	var segs []segment
	for _, p := range c.parts {
		if len(p.queue) == 0 || !p.queue[0].carry {
			continue
		}
		l := p.queue[0].lsn
		ready := true
		for _, q := range c.parts {
			if q == p {
				continue
			}
			if len(q.queue) > 0 {
				ready = ready && q.queue[0].lsn > l
			} else {
				ready = ready && (q.atEnd() || q.maxLSN > l)
			}
		}
		if ready {
			segs = append(segs, segment{p: p, recs: p.queue[:1]})
		}
	}
	return segs
}

// apply runs the round's segments in parallel, one transaction each.
func (c *coordinator) apply(ctx context.Context, segs []segment) error {
	errs := make([]error, len(segs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, c.e.opts.Workers)
	for i, s := range segs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			next := s.recs[len(s.recs)-1].offset + 1
			// a cancelled replay finishes its transactions: they are bounded by the batch size
			parked, err := c.e.applySegment(context.WithoutCancel(ctx), c.ts, s.p.id, s.recs, next)
			errs[i] = err
			c.e.parked.Add(int64(parked))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, s := range segs {
		rows := 0
		for _, r := range s.recs {
			if r.op != 0 && r.park == "" {
				rows++
			}
		}
		c.e.records.Add(int64(len(s.recs)))
		c.e.rows.Add(int64(rows))
		s.p.next = s.recs[len(s.recs)-1].offset + 1
		for _, r := range s.recs {
			s.p.bytes -= r.size
		}
		s.p.queue = s.p.queue[len(s.recs):]
		if len(s.p.queue) == 0 {
			s.p.queue = nil // release the backing array
		}
	}
	return ctx.Err()
}
