package connector

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"

	"github.com/pgcdc/pgcdc/pkg/ack"
	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
	"github.com/pgcdc/pgcdc/pkg/route"
)

// sink is what the pipeline needs of the Kafka sink (a *kafkasink.Sink; tests use one in memory).
type sink interface {
	Append(ctx context.Context, rec kafkasink.Record) error
	// Hold keeps appended records back from Kafka until Release (or until a whole batch waits, or
	// Append waits for room): the pipeline holds a transaction from its begin to its commit, so
	// that it leaves in as few produce requests as its partitions.
	Hold()
	Release()
}

// side is what the pipeline hands to the incremental snapshot and the signals (incremental.go):
// they see the changes and the watermarks in WAL order, between decoding and routing.
type side interface {
	// Change sees every change before it is routed; route false: the change is the side's own (a
	// signal table row, a watermark) and is not routed. At a high watermark it appends the window's
	// rows through emit, as tracker transaction txn (the change's). At a commit it acts on the
	// transaction's signals (a blocking snapshot runs there, the stream paused: it ends early with
	// an error wrapping errStopped at a soft stop, soft).
	Change(hard, soft context.Context, ch *decode.Change, txn ack.TxnID, emit func(kafkasink.Record) error) (route bool, err error)
	// Tasks delivers work that must run on the pipeline goroutine between transactions (a blocking
	// snapshot asked for through the Kafka signal topic); its context ends at a soft stop.
	Tasks() <-chan func(soft context.Context) error
}

// pipeline is the change path: it takes the stream's messages in WAL order, decodes them, routes
// the changes to records, appends them to the sink and registers every transaction with the
// tracker, whose safe position the stream confirms. It runs on one goroutine.
type pipeline struct {
	dec     *decode.Decoder
	router  *route.Router
	sink    sink
	tracker *ack.Tracker
	// onCommit is told of every transaction's end (metrics: replication lag); may be nil.
	onCommit func(end pglogrepl.LSN, txn *decode.Txn)
	// lastCommit gives source.sequence[0] of a session's first event from where it starts; nil: none.
	lastCommit func(start pglogrepl.LSN) pglogrepl.LSN
	side       side // nil: no incremental snapshots nor signals

	ctx  context.Context // the hard context of the current run (Append and catalog reads wait on it)
	soft context.Context // ends at a soft stop
	txn  ack.TxnID       // the tracker's id of the transaction being decoded
}

// errStopped ends a pipeline run at a transaction boundary after a stop was requested.
var errStopped = errors.New("stopped at a transaction boundary")

// run handles messages until soft ends and the decoder is at a transaction boundary (it then
// returns errStopped), hard ends, or a change cannot be handled.
func (p *pipeline) run(soft, hard context.Context, in <-chan pgsource.Message) error {
	p.ctx, p.soft = hard, soft
	defer p.sink.Release()
	stop := soft.Done()
	stopping := false
	var tasks <-chan func(context.Context) error
	for {
		if stopping && p.dec.AtBoundary() {
			return errStopped
		}
		tasks = nil
		if p.side != nil && !stopping && p.dec.AtBoundary() {
			tasks = p.side.Tasks()
		}
		select {
		case m := <-in:
			if err := p.handle(m); err != nil {
				if errors.Is(err, errStopped) {
					// A stop cut a transaction short (a blocking snapshot at its commit): it is
					// not confirmed, and comes again, whole, after a restart.
					p.tracker.DiscardOpen()
				}
				return err
			}
		case task := <-tasks:
			if err := task(soft); err != nil {
				return err
			}
		case <-stop:
			stop, stopping = nil, true // finish the transaction at hand, then stop
		case <-hard.Done():
			return context.Cause(hard)
		}
	}
}

// handle processes one message of the stream.
func (p *pipeline) handle(m pgsource.Message) error {
	switch m.Kind {
	case pgsource.MessageSession:
		// A new session: transactions the last one cut off come again, whole.
		p.sink.Release()
		p.tracker.DiscardOpen()
		p.router.Reset()
		if err := p.dec.Reset(); err != nil {
			return err
		}
		if p.lastCommit != nil {
			p.dec.SetLastCommit(p.lastCommit(m.LSN))
		}
		return nil
	case pgsource.MessageKeepalive:
		// Everything decodable before the server's WAL end has been received and handled: once
		// it is acknowledged, that end is confirmable (but not while a transaction is open: it
		// may already lie past that transaction's commit).
		if p.dec.Idle() {
			p.tracker.Position(m.LSN)
		}
		return nil
	case pgsource.MessageData:
		return p.dec.Decode(p.ctx, m.LSN, m.Data, p.change)
	}
	return fmt.Errorf("pipeline: unknown stream message kind %d", m.Kind)
}

// change routes one decoded change and keeps the tracker in step with the transaction.
func (p *pipeline) change(ch *decode.Change) error {
	switch {
	case ch.Kind == decode.KindBegin:
		p.txn = p.tracker.Begin()
		p.sink.Hold()
	case ch.Kind == decode.KindCommit:
		// The transaction's records go now; a blocking snapshot run at this commit, and the
		// commit's own records, are not held.
		p.sink.Release()
	case ch.Kind == decode.KindMessage && ch.Txn == nil:
		// A message outside any transaction is a transaction of its own, confirmable just past it.
		txn := p.tracker.Begin()
		emit := func(rec kafkasink.Record) error { return p.append(txn, rec) }
		route, err := true, error(nil)
		if p.side != nil {
			route, err = p.side.Change(p.ctx, p.soft, ch, txn, emit) // an incremental snapshot's watermark
		}
		if route && err == nil {
			err = p.router.Route(ch, emit)
		}
		p.tracker.Commit(txn, ch.LSN+1)
		return err
	}
	emit := func(rec kafkasink.Record) error { return p.append(p.txn, rec) }
	if p.side != nil {
		if route, err := p.side.Change(p.ctx, p.soft, ch, p.txn, emit); err != nil || !route {
			return err
		}
	}
	if err := p.router.Route(ch, emit); err != nil {
		return err
	}
	if ch.Kind == decode.KindCommit {
		p.tracker.Commit(p.txn, ch.LSN)
		if p.onCommit != nil {
			p.onCommit(ch.LSN, ch.Txn)
		}
	}
	return nil
}

// append registers rec with the tracker, then hands it to the sink (waiting for room).
func (p *pipeline) append(txn ack.TxnID, rec kafkasink.Record) error {
	rec.Txn = txn
	p.tracker.Add(txn, 1)
	return p.sink.Append(p.ctx, rec)
}
