package deliver

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/webhooktest"
	"github.com/pgcdc/pgcdc/pkg/deliver/payload"
)

// An endpoint that fails a fifth of the attempts (5xx, some with Retry-After; requests hung past
// the client timeout; reset connections) and sometimes answers slowly: every event arrives, the
// events of each key arrive in order, and, the process never restarting, an event arrives twice
// only when an attempt got no answer (the endpoint may have taken it just before the client's
// timeout): duplicates <= attempts without an answer. Two keys
// are poison: one answered 400 (dead-lettered at once), one answered 503 forever (dead-lettered
// after the maximum attempts); the events behind them proceed. The committed offsets end at the
// partitions' ends, and the metrics count what the endpoint saw.
func TestDeliverFaultyEndpoint(t *testing.T) {
	const partitions = 3
	events := workload(40, 12) // 480 events
	brokers, topic := newTopic(t, partitions, events)

	srv := webhooktest.New(1)
	defer srv.Close()
	srv.SetFaults(webhooktest.Faults{Status5xx: 0.12, Timeout: 0.03, Reset: 0.05, SlowBody: 0.05, Hang: time.Second, SlowFor: 150 * time.Millisecond})
	const badRequestKey, unavailableKey = 7, 13
	srv.SetStatus(func(_ *http.Request, body []byte) int {
		ev, _ := webhooktest.EventOf(body)
		switch {
		case ev.ID == badRequestKey && ev.Seq%4 == 1:
			return http.StatusBadRequest
		case ev.ID == unavailableKey && ev.Seq == 5:
			return http.StatusServiceUnavailable
		}
		return 0
	})
	o := testOptions(t, brokers, topic, srv.URL)
	e, stop := runEngine(t, o)
	// 3 events of key 7 (seq 1, 5, 9) and 1 of key 13 go to the dead-letter topic.
	const dead = 4
	waitFor(t, 90*time.Second, "every event delivered or dead-lettered", func() bool {
		return e.Metrics().Totals.Delivered.Load()+e.Metrics().Totals.DeadLettered.Load() >= int64(len(events))
	})
	ends := endOffsets(t, brokers, topic, partitions)
	waitFor(t, 10*time.Second, "offsets committed to the end", func() bool {
		c := committed(t, brokers, o.GroupID, topic, partitions)
		for p, end := range ends {
			if c[p] != end {
				return false
			}
		}
		return true
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	dlq := readDLQ(t, brokers, o.DeadLetterTopic, dead)
	deadSet := map[evt]bool{}
	for _, m := range dlq {
		ev := dlqEvent(t, m)
		deadSet[ev] = true
		status, attempts, reason := header(m, DLQStatus), header(m, DLQAttempts), header(m, DLQReason)
		switch ev.ID {
		case badRequestKey:
			if status != "400" || attempts != "1" || reason != "permanent" || header(m, DLQResponse) == "" {
				t.Errorf("dead letter of %v: status %s attempts %s reason %s response %q", ev, status, attempts, reason, header(m, DLQResponse))
			}
		case unavailableKey:
			if status != "503" || attempts != strconv.Itoa(o.Retry.MaxAttempts) || reason != "max_attempts" {
				t.Errorf("dead letter of %v: status %s attempts %s reason %s", ev, status, attempts, reason)
			}
		default:
			t.Errorf("unexpected dead letter %v (status %s, attempts %s, error %s)", ev, status, attempts, header(m, DLQError))
		}
		if header(m, DLQTopic) != topic || header(m, DLQRoute) != "items" || header(m, DLQEventID) == "" || string(m.Key) != `{"id":`+strconv.Itoa(ev.ID)+`}` {
			t.Errorf("dead letter headers/key: %s %v", m.Key, m.Headers)
		}
	}
	if len(dlq) != dead {
		t.Errorf("dead letters: %d, want %d", len(dlq), dead)
	}

	r := check(events, seen(t, srv.Accepted()), deadSet)
	t.Logf("events %d, accepted %d (distinct %d, duplicates %d), requests %d, injected 5xx %d, timeouts %d, resets %d, slow bodies %d",
		len(events), srv.AcceptedCount(), r.Distinct, r.Duplicates, srv.Requests.Load(), srv.Injected[webhooktest.Injected5xx].Load(),
		srv.Injected[webhooktest.InjectedTimeout].Load(), srv.Injected[webhooktest.InjectedReset].Load(), srv.Injected[webhooktest.InjectedSlowBody].Load())
	noAnswer := e.Metrics().Totals.NoAnswer.Load()
	if len(r.Missing) > 0 || len(r.OrderErrs) > 0 || int64(r.Duplicates) > noAnswer {
		t.Fatalf("missing %v\norder %v\nduplicates %d (attempts without an answer %d)", r.Missing, r.OrderErrs, r.Duplicates, noAnswer)
	}
	for i := range srv.Injected {
		if srv.Injected[i].Load() == 0 {
			t.Errorf("fault %d never injected: the test proves nothing about it", i)
		}
	}
	if got := e.Metrics().Totals.Delivered.Load(); got != int64(r.Distinct) {
		t.Errorf("delivered metric %d, distinct events accepted %d", got, r.Distinct)
	}
	if got := e.Metrics().Totals.DeadLettered.Load(); got != dead {
		t.Errorf("dead-lettered metric %d", got)
	}
}

// on_failure hold: an event retrying gave up on stays at the head of its key, retried on; with
// ordering key the other keys go on (and the committed offset stays before the held event), with
// ordering partition nothing behind it in its partition is delivered. Once the endpoint takes it,
// its key's events follow in order.
func TestDeliverHold(t *testing.T) {
	for _, ordering := range []Ordering{OrderKey, OrderPartition} {
		t.Run(string(ordering), func(t *testing.T) {
			events := workload(5, 6) // key 2's first event is the third record (offset 2)
			brokers, topic := newTopic(t, 1, events)
			srv := webhooktest.New(2)
			defer srv.Close()
			var release atomic.Bool
			var heldAttempts atomic.Int64
			srv.SetStatus(func(_ *http.Request, body []byte) int {
				ev, _ := webhooktest.EventOf(body)
				if ev == (evt{ID: 2}) && !release.Load() {
					heldAttempts.Add(1)
					return http.StatusServiceUnavailable
				}
				return 0
			})
			o := testOptions(t, brokers, topic, srv.URL)
			o.OnFailure, o.Ordering = Hold, ordering
			o.Retry.MaxAttempts = 2
			o.Routes[0].Timeout = 5 * time.Second // no ambiguous timeouts on a loaded machine
			e, stop := runEngine(t, o)
			distinct := func() int { return check(events, seen(t, srv.Accepted()), nil).Distinct }
			waitFor(t, 30*time.Second, "the held event retried past its maximum attempts", func() bool { return heldAttempts.Load() >= 4 })
			got := seen(t, srv.Accepted())
			if ordering == OrderKey {
				waitFor(t, 30*time.Second, "the other keys delivered", func() bool { return distinct() == len(events)-6 })
				got = seen(t, srv.Accepted())
				for _, ev := range got {
					if ev.ID == 2 {
						t.Fatalf("key 2 delivered while its first event is held: %v", ev)
					}
				}
				if c := committed(t, brokers, o.GroupID, topic, 1)[0]; c > 2 {
					t.Fatalf("committed offset %d passes the held event (offset 2)", c)
				}
			} else if check(events, got, nil).Distinct != 2 { // only the two records before the held one
				t.Fatalf("ordering partition: %d events delivered past a held one: %v", len(got), got)
			}
			waitFor(t, 10*time.Second, "the waiting gauge to show the held event", func() bool {
				_, w := e.Metrics().readPending()
				return w > 0
			})
			release.Store(true)
			waitFor(t, 30*time.Second, "every event delivered", func() bool { return distinct() == len(events) })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			r := check(events, seen(t, srv.Accepted()), nil)
			if len(r.Missing) > 0 || len(r.OrderErrs) > 0 || int64(r.Duplicates) > e.Metrics().Totals.NoAnswer.Load() || e.Metrics().Totals.DeadLettered.Load() != 0 {
				t.Fatalf("%+v, dead-lettered %d", r, e.Metrics().Totals.DeadLettered.Load())
			}
		})
	}
}

// A clean stop in the middle of a stream to a slow endpoint: the attempts in flight finish (no
// request is cut off), what was read is delivered and committed, and a second run (UntilEnd,
// which returns by itself) delivers the rest without sending anything twice (but for attempts
// that got no answer, which the long timeout makes unlikely).
func TestDeliverCleanStop(t *testing.T) {
	events := workload(20, 15) // 300
	brokers, topic := newTopic(t, 2, events)
	srv := webhooktest.New(3)
	defer srv.Close()
	srv.SetDelay(40 * time.Millisecond)
	o := testOptions(t, brokers, topic, srv.URL)
	o.MaxPending = 20
	o.Routes[0].Timeout = 5 * time.Second // no attempt times out on a loaded machine: no ambiguous answer
	e1, stop := runEngine(t, o)
	waitFor(t, 60*time.Second, "a third of the events delivered", func() bool { return srv.AcceptedCount() >= len(events)/3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := srv.InFlight.Load(); n != 0 {
		t.Fatalf("%d requests still in flight after Run returned", n)
	}
	if n := srv.Interrupts.Load(); n != 0 {
		t.Fatalf("%d requests cut off by the stop", n)
	}
	atStop := check(events, seen(t, srv.Accepted()), nil)
	c := committed(t, brokers, o.GroupID, topic, 2)
	if total := c[0] + c[1]; total != int64(atStop.Distinct) {
		t.Fatalf("committed %d records (%v), the endpoint accepted %d events", total, c, atStop.Distinct)
	}
	if atStop.Distinct >= len(events) {
		t.Fatalf("the stop came after the end (%d accepted): the test proves nothing", atStop.Distinct)
	}
	srv.SetDelay(0)
	e2 := runUntilEnd(t, o)
	r := check(events, seen(t, srv.Accepted()), nil)
	noAnswer := e1.Metrics().Totals.NoAnswer.Load() + e2.Metrics().Totals.NoAnswer.Load()
	if len(r.Missing) > 0 || len(r.OrderErrs) > 0 || int64(r.Duplicates) > noAnswer {
		t.Fatalf("after restart: %+v (attempts without an answer: %d)", r, noAnswer)
	}
	t.Logf("stopped after %d of %d events; the restart delivered the rest; %d duplicates (attempts without an answer: %d)",
		atStop.Distinct, len(events), r.Duplicates, noAnswer)
}

// Dead letters are sent again by a redrive run: to the same route, with the same event ids, the
// original topic in Pgcdc-Topic. A redrive returns by itself; a second one finds nothing; one
// against a failing endpoint puts the records back in the dead-letter topic.
func TestDeliverRedrive(t *testing.T) {
	events := workload(6, 3) // 18
	brokers, topic := newTopic(t, 2, events)
	srv := webhooktest.New(4)
	defer srv.Close()
	var down atomic.Bool
	down.Store(true)
	ids := map[string]int{} // webhook-id -> refused attempts
	var mu sync.Mutex
	srv.SetStatus(func(r *http.Request, _ []byte) int {
		if down.Load() {
			mu.Lock()
			ids[r.Header.Get("webhook-id")]++
			mu.Unlock()
			return http.StatusInternalServerError
		}
		return 0
	})
	o := testOptions(t, brokers, topic, srv.URL)
	o.Retry.MaxAttempts = 2
	run := func(o Options) *Engine { return runUntilEnd(t, o) }
	if e := run(o); e.Metrics().Totals.DeadLettered.Load() != int64(len(events)) {
		t.Fatalf("dead-lettered %d of %d", e.Metrics().Totals.DeadLettered.Load(), len(events))
	}
	if len(ids) != len(events) {
		t.Fatalf("%d distinct webhook-ids for %d events", len(ids), len(events))
	}
	down.Store(false)
	ro := o
	ro.Redrive, ro.GroupID = true, o.GroupID+".redrive"
	if e := run(ro); e.Metrics().Totals.Delivered.Load() != int64(len(events)) {
		t.Fatalf("redrive delivered %d of %d", e.Metrics().Totals.Delivered.Load(), len(events))
	}
	acc := srv.Accepted()
	r := check(events, seen(t, acc), nil)
	if len(r.Missing) > 0 || r.Duplicates > 0 {
		t.Fatalf("redrive: %+v", r)
	}
	for _, a := range acc {
		if ids[a.Header.Get("webhook-id")] != 2 || a.Header.Get(HeaderTopic) != topic {
			t.Fatalf("redriven request: webhook-id %s (refused %d times before), Pgcdc-Topic %s", a.Header.Get("webhook-id"), ids[a.Header.Get("webhook-id")], a.Header.Get(HeaderTopic))
		}
	}
	if e := run(ro); e.Metrics().Totals.Attempts.Load() != 0 {
		t.Fatalf("second redrive made %d attempts", e.Metrics().Totals.Attempts.Load())
	}
	// Records that fail again go back to the dead-letter topic (after the end the run stops at).
	produce(t, brokers, topic, []evt{{ID: 100}}, 999)
	down.Store(true)
	run(o)
	if e := run(ro); e.Metrics().Totals.DeadLettered.Load() != 1 {
		t.Fatalf("failing redrive dead-lettered %d, want 1", e.Metrics().Totals.DeadLettered.Load())
	}
	dlq := readDLQ(t, brokers, o.DeadLetterTopic, len(events)+2)
	last := dlq[len(dlq)-1]
	if dlqEvent(t, last) != (evt{ID: 100}) || header(last, DLQTopic) != topic || header(last, DLQAttempts) != "2" {
		t.Fatalf("re-dead-lettered record: %s %v", last.Value, last.Headers)
	}
}

// An event that cannot be put in the route's format (here a Hasura body from a value whose decimal
// is not base64) goes to the dead-letter topic at once, without a request, reason "payload"; the
// next event of its key proceeds.
func TestDeliverUnconvertibleEvent(t *testing.T) {
	brokers, topic := newTopic(t, 1, nil)
	schema := `{"type":"struct","name":"t.Envelope","fields":[{"field":"after","type":"struct","optional":true,"fields":[` +
		`{"field":"id","type":"int32"},{"field":"price","type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}}]}]}`
	value := func(price string) []byte {
		return []byte(`{"schema":` + schema + `,"payload":{"before":null,"after":{"id":1,"price":"` + price + `"},` +
			`"source":{"name":"t","schema":"public","table":"items","lsn":10},"op":"c"}}`)
	}
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(context.Background(),
		kafka.Message{Key: []byte(`{"id":1}`), Value: value("***")},
		kafka.Message{Key: []byte(`{"id":1}`), Value: value("BM4=")}); err != nil {
		t.Fatal(err)
	}
	srv := webhooktest.New(7)
	defer srv.Close()
	o := testOptions(t, brokers, topic, srv.URL)
	o.Routes[0].Format = payload.Hasura
	runUntilEnd(t, o)
	if srv.AcceptedCount() != 1 || srv.Requests.Load() != 1 || !strings.Contains(string(srv.Accepted()[0].Body), `"price":12.30`) {
		t.Fatalf("endpoint got %d requests: %v", srv.Requests.Load(), srv.Accepted())
	}
	dlq := readDLQ(t, brokers, o.DeadLetterTopic, 1)
	if header(dlq[0], DLQReason) != "payload" || header(dlq[0], DLQAttempts) != "0" || !strings.Contains(header(dlq[0], DLQError), "column price") {
		t.Fatalf("dead letter headers: %v", dlq[0].Headers)
	}
}
