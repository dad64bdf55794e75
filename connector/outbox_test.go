package connector_test

import (
	"context"
	"testing"
	"time"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// Outbox rows that exist when pgcdc starts are routed by the snapshot (as Debezium's EventRouter
// routes op "r" events); the outbox table's own topic is not created, its change events not
// published (outbox.raw_events is off); an update is logged and routes nothing.
func TestOutboxSnapshotRoutesExistingRows(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE public.outbox (id uuid PRIMARY KEY, aggregatetype text NOT NULL, aggregateid text NOT NULL, type text NOT NULL, payload jsonb)`)
	e.exec(`INSERT INTO public.outbox VALUES (gen_random_uuid(), 'order', 'o-1', 'OrderCreated', '{"n": 1}'), (gen_random_uuid(), 'order', 'o-2', 'OrderCreated', '{"n": 2}')`)
	topic := e.prefix + ".ev.order"
	p := e.start(map[string]string{
		"PGCDC_TABLES_INCLUDE":           "public.outbox",
		"PGCDC_OUTBOX_TABLES":            "public.outbox",
		"PGCDC_OUTBOX_TOPIC_REPLACEMENT": e.prefix + ".ev.${routedByValue}",
		"PGCDC_EVENTS_KEY_SCHEMAS":       "false",
		"PGCDC_EVENTS_VALUE_SCHEMAS":     "false",
	})
	p.waitStreaming()
	e.exec(`INSERT INTO public.outbox VALUES (gen_random_uuid(), 'order', 'o-3', 'OrderCreated', '{"n": 3}')`)
	e.exec(`UPDATE public.outbox SET type = 'Changed' WHERE aggregateid = 'o-1'`)
	p.waitLog("unexpected update of an outbox row ignored", 60*time.Second)

	if err := waitRecords(e.brokers, topic, 3, time.Minute); err != nil {
		t.Fatal(err)
	}
	msgs, err := testenv.ReadTopic(context.Background(), e.brokers, topic, 3, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, m := range msgs {
		keys[string(m.Key)+" "+string(m.Value)] = true
	}
	for _, want := range []string{`"o-1" "{\"n\": 1}"`, `"o-2" "{\"n\": 2}"`, `"o-3" "{\"n\": 3}"`} {
		if !keys[want] {
			t.Errorf("missing routed event %s in %v", want, keys)
		}
	}
	if n := testenv.TopicRecords(context.Background(), e.brokers, e.topic("outbox")); n >= 0 {
		t.Errorf("the outbox table's own topic exists (%d records): outbox.raw_events is off", n)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if n := testenv.TopicRecords(context.Background(), e.brokers, topic); n != 3 {
		t.Errorf("%d routed records, want 3 (the update routes nothing)", n)
	}
}
