package deliver

import (
	"container/heap"
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/pkg/deliver/offsets"
	"github.com/pgcdc/pgcdc/pkg/deliver/payload"
	"github.com/pgcdc/pgcdc/pkg/deliver/retry"
	"github.com/pgcdc/pgcdc/pkg/deliver/route"
)

// partition delivers one assigned partition. One goroutine (run) owns its state; attempts and
// dead-letter writes run on goroutines of their own and report back on results.
//
// Scheduling: every delivery (an event for one route) joins the queue of its ordering unit, the
// route plus the record key (OrderKey) or the route alone (OrderPartition). Only the head of a
// queue is ever attempted, and the next one only once the head is finished (delivered or
// dead-lettered): the endpoint sees a unit's events in offset order. Up to Concurrency queue
// heads are attempted at once. A failed head waits for its retry without holding a slot.
type partition struct {
	e     *Engine
	log   zerolog.Logger
	topic string
	id    int
	start int64 // the assignment's offset: committed, or kafka.FirstOffset / LastOffset
	end   int64 // UntilEnd: records from here on are not read; -1: read forever

	tr       *offsets.Tracker
	position atomic.Int64 // what may be committed; -1 unknown (read by the committer)
	hwm      atomic.Int64 // log end offset as last seen (read by the lag loop)
	finished bool         // UntilEnd: every record before end is finished

	queues  map[string]*unitQueue
	ready   []*unitQueue
	delayed delayHeap
	running int
	results chan *delivery
	open    int // deliveries waiting in the heap (for the waiting gauge)
}

// unitQueue is the deliveries of one ordering unit, in offset order.
type unitQueue struct {
	key   string
	items []*delivery
	state uint8 // idle (in ready, or empty), busy (head attempted or waiting for its retry)
}

const (
	qIdle uint8 = iota
	qBusy
)

// record is one read record and the deliveries it still waits for.
type record struct {
	entry     *offsets.Entry
	remaining int
}

// delivery is one event on its way to one route.
type delivery struct {
	ev   *payload.Event
	rt   *route.Route
	prep *payload.Prepared
	id   string
	rec  *record
	q    *unitQueue

	attempts   int
	first      time.Time // start of the first attempt
	last       time.Time // end of the latest attempt
	outcome    outcome
	class      retry.Class
	status     int    // latest HTTP status, 0 when none came
	errText    string // latest failure, redacted
	excerpt    []byte // first bytes of the latest non-2xx body
	retryAfter time.Duration

	deadLetter bool   // retrying gave up: write it to the dead-letter topic next
	reason     string // why: permanent, max_attempts, max_age, payload, route
	held       bool   // on_failure hold: retrying gave up, retrying on anyway
}

type outcome uint8

const (
	outcomeNone outcome = iota
	outcomeDelivered
	outcomeFailed
	outcomeDeadLettered
	outcomeAborted // the stop's grace ran out: neither delivered nor failed
)

func newPartition(e *Engine, topic string, id int, start, end int64) *partition {
	p := &partition{
		e: e, topic: topic, id: id, start: start, end: end,
		log:     e.log.With().Str("topic", topic).Int("partition", id).Logger(),
		tr:      offsets.New(start),
		queues:  map[string]*unitQueue{},
		results: make(chan *delivery, e.o.Concurrency),
	}
	p.position.Store(-1)
	if start >= 0 {
		p.position.Store(start)
	}
	return p
}

// run delivers until stop is closed or, with UntilEnd, until every record before end is finished.
//
// After stop it reads nothing more and drains: what was read keeps being delivered, retries
// included, until drainUntil (set before stop is closed); an attempt still running then may go on
// until hard ends it. A stop with a healthy endpoint thus leaves nothing to deliver again; what is
// left unfinished is not committed and is delivered again by the partition's next owner.
func (p *partition) run(stop <-chan struct{}, drainUntil *atomic.Int64, hard context.Context) {
	defer func() {
		p.e.pending.Add(-int64(p.tr.Pending()))
		p.e.waiting.Add(-int64(p.open))
	}()
	if p.end >= 0 && p.alreadyAtEnd(hard) {
		p.finished = true
		return
	}
	msgs := make(chan kafka.Message)
	rctx, stopReading := context.WithCancel(context.Background())
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		p.read(rctx, msgs)
	}()
	defer func() {
		stopReading()
		<-readerDone
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var stopping, atEnd bool
	var soft time.Time // while stopping: no attempt starts after it
	for {
		now := time.Now()
		draining := stopping && now.Before(soft) && hard.Err() == nil
		if !stopping || draining {
			p.dispatch(hard)
		}
		if stopping && p.running == 0 && (!draining || len(p.ready) == 0 && (len(p.delayed) == 0 || p.delayed[0].due.After(soft))) {
			return
		}
		if atEnd && p.running == 0 && p.tr.Pending() == 0 {
			p.finished = true
			return
		}
		var in chan kafka.Message
		if !stopping && !atEnd && p.tr.Pending() < p.e.o.MaxPending {
			in = msgs
		}
		switch {
		case len(p.delayed) > 0 && (!stopping || draining):
			wake := p.delayed[0].due
			if stopping && soft.Before(wake) {
				wake = soft
			}
			timer.Reset(wake.Sub(now))
		case draining:
			timer.Reset(soft.Sub(now))
		default:
			timer.Stop()
		}
		select {
		case m := <-in:
			p.add(m)
			if p.end >= 0 && m.Offset+1 >= p.end {
				atEnd = true
				stopReading()
			}
		case d := <-p.results:
			p.running--
			p.handle(d)
		case <-timer.C:
			p.promote(time.Now())
		case <-stop:
			stopping, stop = true, nil
			soft = time.Unix(0, drainUntil.Load())
			stopReading()
		}
		if pos, ok := p.tr.Position(); ok {
			p.position.Store(pos)
		}
	}
}

// alreadyAtEnd resolves a symbolic start for UntilEnd and reports whether nothing is to be read.
func (p *partition) alreadyAtEnd(ctx context.Context) bool {
	start := p.start
	if start < 0 {
		first, end, err := partitionOffsets(ctx, p.e.admin, map[string][]int{p.topic: {p.id}})
		if err != nil {
			return false // read and see
		}
		start = first[p.topic][p.id]
		if p.start == kafka.LastOffset {
			start = end[p.topic][p.id]
		}
	}
	return start >= p.end
}

// read feeds the partition's records to msgs from the start offset on, until ctx ends.
func (p *partition) read(ctx context.Context, msgs chan<- kafka.Message) {
	offset := p.start
	for fails := 0; ctx.Err() == nil; {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: p.e.o.Kafka.Brokers, Dialer: p.e.o.Kafka.Dialer, Topic: p.topic, Partition: p.id,
			MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 500 * time.Millisecond, QueueCapacity: 256,
			ReadBackoffMin: 100 * time.Millisecond, ReadBackoffMax: time.Second,
			OffsetOutOfRangeError: true,
		})
		err := r.SetOffset(offset)
		for err == nil {
			var m kafka.Message
			if m, err = r.FetchMessage(ctx); err != nil {
				break
			}
			fails = 0
			offset = m.Offset + 1
			select {
			case msgs <- m:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		_ = r.Close()
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, kafka.OffsetOutOfRange) {
			first, _, lerr := partitionOffsets(ctx, p.e.admin, map[string][]int{p.topic: {p.id}})
			if lerr == nil {
				p.log.Error().Int64("offset", offset).Int64("first_offset", first[p.topic][p.id]).
					Msg("the committed offset is no longer in the partition (deleted by retention, or the topic was recreated): continuing from its first offset; the records in between are not delivered")
				offset = first[p.topic][p.id]
				continue
			}
			err = lerr
		}
		if fails++; fails == 1 || fails%30 == 0 {
			p.log.Warn().Err(err).Int("failures", fails).Msg("reading the partition failed; retrying")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// add takes a record just read: its deliveries join their queues.
func (p *partition) add(m kafka.Message) {
	e := p.e
	if m.HighWaterMark > 0 {
		p.hwm.Store(m.HighWaterMark)
	}
	ev := payload.Parse(m)
	rec := &record{entry: p.tr.Add(m.Offset)}
	e.pending.Add(1)
	var ds []*delivery
	deliverTo := func(rt *route.Route) {
		d := &delivery{ev: ev, rt: rt, rec: rec, id: ev.ID(rt.IDHeader)}
		prep, err := e.builder.Prepare(rt.Format, ev, payload.Options{TriggerName: rt.TriggerName, IDHeader: rt.IDHeader})
		var skip *payload.Skip
		switch {
		case errors.As(err, &skip):
			e.m.skip(skip.Reason)
			return
		case err != nil:
			// Never deliverable in this format: dead-lettered at once, or (hold) failing every
			// attempt until the route's format is changed.
			d.errText = err.Error()
			d.deadLetter, d.reason = e.o.OnFailure == DeadLetter, "payload"
		}
		d.prep = prep
		ds = append(ds, d)
	}
	if e.o.Redrive {
		name := originFromHeaders(ev)
		if e.o.RedriveRoute != "" {
			name = e.o.RedriveRoute
		}
		if rt := e.routes[name]; rt != nil {
			deliverTo(rt)
		} else {
			ds = append(ds, &delivery{ev: ev, rt: &route.Route{Name: name}, rec: rec, id: ev.ID("id"),
				deadLetter: true, reason: "route", errText: "route " + strconv.Quote(name) + " is not configured"})
		}
	} else {
		matched := false
		for _, rt := range e.o.Routes {
			if rt.Matches(ev) {
				matched = true
				deliverTo(rt)
			}
		}
		if !matched {
			e.m.skip("no_route")
		}
	}
	if len(ds) == 0 {
		p.finishRecord(rec)
		return
	}
	rec.remaining = len(ds)
	for _, d := range ds {
		key := d.rt.Name
		if e.o.Ordering == OrderKey {
			key += "\x00" + string(ev.Key)
		}
		q := p.queues[key]
		if q == nil {
			q = &unitQueue{key: key}
			p.queues[key] = q
		}
		d.q = q
		q.items = append(q.items, d)
		if len(q.items) == 1 && q.state == qIdle {
			p.ready = append(p.ready, q)
		}
	}
}

// dispatch starts the heads of ready queues while slots are free.
func (p *partition) dispatch(hard context.Context) {
	for p.running < p.e.o.Concurrency && len(p.ready) > 0 && hard.Err() == nil {
		q := p.ready[0]
		p.ready[0] = nil
		p.ready = p.ready[1:]
		q.state = qBusy
		d := q.items[0]
		p.running++
		go func() {
			if d.deadLetter {
				p.e.writeDeadLetter(hard, d)
			} else {
				p.e.attempt(hard, d)
			}
			p.results <- d
		}()
	}
}

// handle takes a finished attempt or dead-letter write.
func (p *partition) handle(d *delivery) {
	e := p.e
	switch d.outcome {
	case outcomeDelivered:
		if d.held {
			p.log.Info().Str("route", d.rt.Name).Int64("offset", d.ev.Offset).Int("attempts", d.attempts).Msg("held event delivered at last; its key moves on")
		}
		e.m.delivery(d.rt.Name, time.Since(d.ev.CommitTime()))
		p.finish(d)
		return
	case outcomeDeadLettered:
		e.m.deadLetter(d.rt.Name, d.reason)
		p.log.Warn().Str("route", d.rt.Name).Int64("offset", d.ev.OriginOffset).Str("key", logKey(d.ev.Key)).
			Str("reason", d.reason).Int("attempts", d.attempts).Int("status", d.status).Str("error", d.errText).
			Str("dead_letter_topic", e.o.DeadLetterTopic).Msg("event dead-lettered; the next event of its key proceeds")
		p.finish(d)
		return
	case outcomeAborted:
		return // not finished: delivered again after the restart or rebalance
	}
	dec := e.o.Retry.Next(d.attempts, d.class, d.first, d.last, d.retryAfter, rand.Float64())
	if dec.GiveUp {
		if e.o.OnFailure == DeadLetter {
			d.deadLetter, d.reason = true, dec.Reason
			d.q.state = qIdle
			p.ready = append(p.ready, d.q)
			return
		}
		if !d.held {
			d.held = true
			p.log.Error().Str("route", d.rt.Name).Int64("offset", d.ev.Offset).Str("key", logKey(d.ev.Key)).
				Str("reason", dec.Reason).Int("attempts", d.attempts).Int("status", d.status).Str("error", d.errText).
				Msg("retrying gave up; on_failure is hold: retrying on, the events behind it wait")
		}
		if dec.Delay == 0 {
			dec.Delay = e.o.Retry.Backoff(d.attempts, rand.Float64())
		}
	}
	p.log.Debug().Str("route", d.rt.Name).Int64("offset", d.ev.Offset).Int("attempt", d.attempts).Int("status", d.status).
		Str("error", d.errText).Dur("retry_in", dec.Delay).Msg("attempt failed")
	heap.Push(&p.delayed, delayed{due: time.Now().Add(dec.Delay), q: d.q})
	p.open++
	e.waiting.Add(1)
}

// promote makes the queues whose retry is due ready.
func (p *partition) promote(now time.Time) {
	for len(p.delayed) > 0 && !p.delayed[0].due.After(now) {
		it := heap.Pop(&p.delayed).(delayed)
		p.open--
		p.e.waiting.Add(-1)
		it.q.state = qIdle
		p.ready = append(p.ready, it.q)
	}
}

// finish ends a delivery: its queue moves on, its record may be finished.
func (p *partition) finish(d *delivery) {
	q := d.q
	q.items[0] = nil
	q.items = q.items[1:]
	q.state = qIdle
	if len(q.items) > 0 {
		p.ready = append(p.ready, q)
	} else {
		delete(p.queues, q.key)
	}
	if d.rec.remaining--; d.rec.remaining == 0 {
		p.finishRecord(d.rec)
	}
}

func (p *partition) finishRecord(rec *record) {
	p.tr.Done(rec.entry)
	p.e.pending.Add(-1)
}

// delayed is a queue waiting for its head's next attempt.
type delayed struct {
	due time.Time
	q   *unitQueue
}

type delayHeap []delayed

func (h delayHeap) Len() int           { return len(h) }
func (h delayHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h delayHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)        { *h = append(*h, x.(delayed)) }
func (h *delayHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func itoa(i int) string { return strconv.Itoa(i) }
