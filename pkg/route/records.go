package route

import (
	"time"

	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
)

// built is what one change event is made of.
type built struct {
	op            event.Op
	before, after []event.Datum
	src           event.Source
	tx            *event.Transaction
	now           time.Time
	key           []byte // nil: a null key
	headers       []kafkasink.Header
}

// build appends the records of one change event: the Debezium envelope (and after a delete its
// tombstone), or with Options.Unwrap the flattened row (unwrap.go). With Options.ChangedHeader /
// UnchangedHeader the event carries ExtractChangedRecordState's headers, and so does its
// tombstone: in Kafka Connect a delete and its tombstone share one headers object, so what the
// transforms add to the delete's headers is on the tombstone too (checked against Debezium 3.6.1).
func (r *Router) build(recs []kafkasink.Record, t *table, ch *decode.Change, b built) ([]kafkasink.Record, error) {
	evHeaders := b.headers
	var changed, unchanged []string
	if r.opts.ChangedHeader != "" || r.opts.UnchangedHeader != "" {
		if b.before != nil && b.after != nil { // else both lists are empty, as Debezium writes them
			var err error
			if changed, unchanged, err = t.enc.ChangedFields(b.before, b.after); err != nil {
				return recs, err
			}
		}
		evHeaders = b.headers[:len(b.headers):len(b.headers)]
		if r.opts.ChangedHeader != "" {
			evHeaders = append(evHeaders, kafkasink.Header{Key: r.opts.ChangedHeader, Value: event.AppendStringList(nil, changed)})
		}
		if r.opts.UnchangedHeader != "" {
			evHeaders = append(evHeaders, kafkasink.Header{Key: r.opts.UnchangedHeader, Value: event.AppendStringList(nil, unchanged)})
		}
	}
	if t.flat != nil {
		return r.unwrapRecords(recs, t, ch, b, evHeaders, changed, unchanged)
	}
	// The value's prefix (with value schemas, the whole schema: most of the record) is shared by
	// every record of the relation version instead of copied into each one.
	own, shared := t.enc.ValuePrefix(), []byte(nil)
	if len(own) >= sharedPrefixMin {
		own, shared = nil, own
	}
	value, err := t.enc.AppendValueBody(append(make([]byte, 0, t.valueCap), own...), b.op, b.before, b.after, b.src, b.tx, b.now)
	if err != nil {
		return recs, err
	}
	t.keyCap, t.valueCap = len(b.key)+len(b.key)/8+8, len(value)+len(value)/8+64
	recs = append(recs, kafkasink.Record{Topic: t.topic, Key: b.key, ValuePrefix: shared, Value: value, Headers: evHeaders, Table: t.rel.Name, LSN: ch.LSN})
	if b.op == event.OpDelete && r.opts.TombstonesOnDelete && b.key != nil {
		recs = append(recs, kafkasink.Record{Topic: t.topic, Key: b.key, Headers: evHeaders, Table: t.rel.Name, LSN: ch.LSN})
	}
	return recs, nil
}

// sharedPrefixMin is the length from which a value's prefix is shared between records rather than
// copied into each (a schema is kilobytes; `{"before":` alone is not worth a second slice).
const sharedPrefixMin = 64
