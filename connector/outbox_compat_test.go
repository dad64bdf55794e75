package connector_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgcdc/pgcdc/internal/debeziumtest"
	"github.com/pgcdc/pgcdc/internal/testenv"
)

// The comparison of pgcdc's outbox routing with Debezium's outbox EventRouter
// (io.debezium.transforms.outbox.EventRouter, and for the message outbox
// io.debezium.connector.postgresql.transforms.DecodeLogicalDecodingMessageContent before it) in
// Kafka Connect beside Debezium 3.6.1: the same outbox writes, each side through its own slot, and
// the routed records diffed record by record (topic, partition, key, value, headers), as
// compat_test.go does for change events.
//
// The routing values of a run carry a random token, so that the runs (and Debezium beside pgcdc)
// never share a topic: pgcdc routes to T, Debezium (a RegexRouter after the EventRouter) to
// <its prefix>.routed.T. The token is normalized to TOKEN, and the topic prefix to PREFIX, before
// the comparison; golden files under testdata/compat/<run>/ hold Debezium's records, so that
// TestOutboxCompatGolden (make test) checks pgcdc without starting Debezium.
// TestOutboxCompatDebezium runs Debezium (make test-long, or -update-golden to rewrite the files).

// outboxAllowed are the deliberate differences of the outbox comparison (besides compat_test.go's).
var outboxAllowed = []allowance{
	{re: regexp.MustCompile(`^\S+ #\d+ only in Debezium: key=.*"nontx"`), reason: "a non-transactional logical decoding message is written whether or not its transaction commits, so it is no outbox event: pgcdc does not route it (and warns); Debezium's DecodeLogicalDecodingMessageContent routes every message"},
	{re: regexp.MustCompile(`^\S+ value\.schema\.name: debezium="PREFIX\.public\.outbox\.[a-z]+_TOKEN\.Value" pgcdc="PREFIX\.public\.outbox\.[a-z]+_TOKEN\.Value"`), reason: "the envelope's schema name: Debezium caches the envelope schema by payload schema alone, so an event gets the name built for the first routing value seen with the same payload schema since its start; pgcdc names it after the event's own routing value"},
}

// outboxRun is one Debezium EventRouter configuration and the pgcdc configuration that means the
// same.
type outboxRun struct {
	name                     string
	messages                 bool // the message outbox (DecodeLogicalDecodingMessageContent + EventRouter)
	keySchemas, valueSchemas bool
	partitions               int
	dbz                      map[string]string // EventRouter options (transforms.outbox.<key>)
	pgcdc                    map[string]string // PGCDC_* variables
	topics                   []string          // the routed topics, TOKEN for the run's token
	end                      string            // the topic of the end marker
}

func outboxRuns() []outboxRun {
	return []outboxRun{
		{
			name: "outbox_default", keySchemas: true, valueSchemas: true, partitions: 3,
			topics: []string{"outbox.event.order_TOKEN", "outbox.event.customer_TOKEN"},
			end:    "outbox.event.zzend_TOKEN",
		},
		{
			name: "outbox_expand_envelope", keySchemas: true, valueSchemas: true, partitions: 1,
			dbz: map[string]string{
				"table.expand.json.payload":         "true",
				"table.fields.additional.placement": "type:header:eventType,seq:envelope,tenant:envelope:tenantId",
				"route.tombstone.on.empty.payload":  "true",
				"route.topic.replacement":           "events.${routedByValue}",
			},
			pgcdc: map[string]string{
				"PGCDC_OUTBOX_EXPAND_JSON_PAYLOAD":        "true",
				"PGCDC_OUTBOX_ADDITIONAL_FIELDS":          "type:header:eventType,seq:envelope,tenant:envelope:tenantId",
				"PGCDC_OUTBOX_TOMBSTONE_ON_EMPTY_PAYLOAD": "true",
				"PGCDC_OUTBOX_TOPIC_REPLACEMENT":          "events.${routedByValue}",
			},
			topics: []string{"events.order_TOKEN", "events.customer_TOKEN"},
			end:    "events.zzend_TOKEN",
		},
		{
			name: "outbox_regex_noschemas", partitions: 1,
			dbz: map[string]string{
				"route.by.field":                    "stream",
				"route.topic.regex":                 "(?<domain>[a-z]+)-(?<kind>[a-z]+)_(?<tok>.+)",
				"route.topic.replacement":           "${domain}.$2.${tok}",
				"table.field.event.key":             "tenant",
				"table.field.event.id":              "seq",
				"table.expand.json.payload":         "true",
				"table.json.payload.null.behavior":  "optional_bytes",
				"table.fields.additional.placement": "type:header,aggregatetype:header:aggType,id:header:eventId",
				"table.op.invalid.behavior":         "error",
			},
			pgcdc: map[string]string{
				"PGCDC_OUTBOX_ROUTE_BY_FIELD":      "stream",
				"PGCDC_OUTBOX_TOPIC_REGEX":         "(?<domain>[a-z]+)-(?<kind>[a-z]+)_(?<tok>.+)",
				"PGCDC_OUTBOX_TOPIC_REPLACEMENT":   "${domain}.$2.${tok}",
				"PGCDC_OUTBOX_EVENT_KEY_FIELD":     "tenant",
				"PGCDC_OUTBOX_EVENT_ID_FIELD":      "seq",
				"PGCDC_OUTBOX_EXPAND_JSON_PAYLOAD": "true",
				"PGCDC_OUTBOX_JSON_NULL_FIELDS":    "optional_bytes",
				"PGCDC_OUTBOX_ADDITIONAL_FIELDS":   "type:header,aggregatetype:header:aggType,id:header:eventId",
				"PGCDC_OUTBOX_OP_INVALID_BEHAVIOR": "error",
			},
			topics: []string{"shop.orders.TOKEN", "shop.customers.TOKEN", "misc_TOKEN"},
			end:    "zz.end.TOKEN",
		},
		{
			name: "message_outbox", messages: true, keySchemas: true, valueSchemas: true, partitions: 1,
			dbz: map[string]string{
				"table.fields.additional.placement": "type:header",
			},
			pgcdc: map[string]string{
				"PGCDC_OUTBOX_ADDITIONAL_FIELDS": "type:header",
			},
			topics: []string{"outbox.event.order_TOKEN", "outbox.event.customer_TOKEN"},
			end:    "outbox.event.zzend_TOKEN",
		},
	}
}

// outboxTable is the outbox table of the table runs: Debezium's basic outbox table plus a sequence
// number, a tenant and a second routing column.
const outboxTable = `CREATE TABLE public.outbox (
	id uuid PRIMARY KEY,
	aggregatetype varchar(255) NOT NULL,
	aggregateid varchar(255) NOT NULL,
	type varchar(255) NOT NULL,
	payload jsonb,
	seq int NOT NULL DEFAULT 0,
	tenant text,
	stream text)`

// outboxScript writes the events of the table runs: several per aggregate, one deleted in its own
// transaction (the WAL keeps the insert), a rolled-back transaction and a rolled-back savepoint
// (never routed), an update and a later delete (never routed), payloads of every JSON kind.
func outboxScript(e *env, tok string) {
	ins := func(id int, aggType, aggID, typ, payload string, seq int, tenant, stream string) string {
		p := "NULL"
		if payload != "" {
			p = "'" + strings.ReplaceAll(payload, "'", "''") + "'"
		}
		tn := "NULL"
		if tenant != "" {
			tn = "'" + tenant + "'"
		}
		return "INSERT INTO public.outbox VALUES ('" + uuidOf(id) + "', '" + aggType + "_" + tok + "', '" + aggID + "', '" + typ + "', " + p + ", " +
			strconv.Itoa(seq) + ", " + tn + ", '" + stream + "_" + tok + "')"
	}
	e.exec(`BEGIN`)
	e.exec(ins(1, "order", "o-1", "OrderCreated", `{"orderId": 1, "lines": [{"sku": "A-1", "qty": 2, "price": 19.99}, {"sku": "B-2", "qty": 1, "price": 5.5}], "total": 45.48, "paid": false, "note": null, "tags": ["new", "web"], "meta": {"channel": "web", "attempt": 1}, "big": 12345678901, "sci": 1e2, "ratio": 1.50}`, 1, "acme", "shop-orders"))
	e.exec(ins(2, "customer", "c-7", "CustomerUpdated", `{"customerId": 7, "name": "Zoë \"Z\" O’Neil\\path\n", "emails": [], "vip": true, "scores": [1, 2, 3], "tiny": 0.000001}`, 1, "", "shop-customers"))
	e.exec(ins(3, "order", "o-1", "OrderPaid", `{"orderId": 1, "amount": -0.5, "paidAt": "2026-01-02T03:04:05Z", "nested": {"a": {"b": [[1, 2], [3]]}}}`, 2, "acme", "shop-orders"))
	e.exec(`COMMIT`)
	// inserted and deleted in one transaction: routed
	e.exec(`BEGIN`)
	e.exec(ins(4, "order", "o-2", "OrderCreated", `{"orderId": 2}`, 1, "globex", "shop-orders"))
	e.exec(`DELETE FROM public.outbox WHERE id = '` + uuidOf(4) + `'`)
	e.exec(`COMMIT`)
	// rolled back: never routed
	e.exec(`BEGIN`)
	e.exec(ins(5, "order", "o-9", "OrderCreated", `{"orderId": 9}`, 1, "acme", "shop-orders"))
	e.exec(`ROLLBACK`)
	// a rolled-back savepoint: its event is never routed, the others are
	e.exec(`BEGIN`)
	e.exec(ins(6, "order", "o-3", "OrderCreated", `{"orderId": 3}`, 1, "initech", "shop-orders"))
	e.exec(`SAVEPOINT s1`)
	e.exec(ins(7, "order", "o-3", "OrderCancelled", `{"orderId": 3, "rolledBack": true}`, 2, "initech", "shop-orders"))
	e.exec(`ROLLBACK TO SAVEPOINT s1`)
	e.exec(ins(8, "customer", "c-8", "CustomerDeleted", "", 1, "initech", "shop-customers"))
	e.exec(`COMMIT`)
	// an update (table.op.invalid.behavior) and a delete: nothing routed
	e.exec(`UPDATE public.outbox SET type = 'Changed' WHERE id = '` + uuidOf(1) + `'`)
	e.exec(`DELETE FROM public.outbox WHERE id = '` + uuidOf(2) + `'`)
	// payloads that are not JSON objects: published as they are, expanded or not
	e.exec(`BEGIN`)
	e.exec(ins(9, "order", "o-4", "Note", `"just a string"`, 1, "acme", "misc"))
	e.exec(ins(10, "order", "o-4", "Count", `42`, 2, "acme", "misc"))
	e.exec(ins(11, "customer", "c-9", "Empty", `{}`, 1, "acme", "shop-customers"))
	e.exec(`COMMIT`)
	e.exec(ins(12, "zzend", "end", "End", `{"end": true}`, 1, "acme", "zz-end"))
}

// outboxMessageScript emits the message outbox's events: content holding an outbox row's fields,
// routed by the prefix (pgcdc) or by the content's aggregatetype (the EventRouter's default), which
// are the same.
func outboxMessageScript(e *env, tok string) {
	emit := func(prefix, content string, transactional bool) string {
		return "SELECT pg_logical_emit_message(" + strconv.FormatBool(transactional) + ", '" + prefix + "_" + tok + "', '" +
			strings.ReplaceAll(strings.ReplaceAll(content, "TOKEN", tok), "'", "''") + "')"
	}
	e.exec(`BEGIN`)
	e.exec(emit("order", `{"id": "m-1", "aggregatetype": "order_TOKEN", "aggregateid": "o-1", "type": "OrderCreated", "payload": {"orderId": 1, "lines": [{"sku": "A", "qty": 2, "price": 12.5}], "note": null, "big": 12345678901}}`, true))
	e.exec(emit("customer", `{"id": "m-2", "aggregatetype": "customer_TOKEN", "aggregateid": "c-1", "type": "CustomerCreated", "payload": {"name": "Zoë \"Z\"", "vip": true, "tags": []}}`, true))
	e.exec(emit("order", `{"id": "m-3", "aggregatetype": "order_TOKEN", "aggregateid": "o-1", "type": "OrderPaid", "payload": {"orderId": 1, "amount": 1.0E2}}`, true))
	e.exec(`COMMIT`)
	e.exec(`BEGIN`)
	e.exec(emit("order", `{"id": "m-4", "aggregatetype": "order_TOKEN", "aggregateid": "o-9", "type": "OrderCreated", "payload": {"orderId": 9}}`, true))
	e.exec(`ROLLBACK`)
	e.exec(`BEGIN`)
	e.exec(emit("order", `{"id": "m-5", "aggregatetype": "order_TOKEN", "aggregateid": "o-2", "type": "OrderCreated", "payload": {"orderId": 2}}`, true))
	e.exec(`SAVEPOINT s1`)
	e.exec(emit("order", `{"id": "m-6", "aggregatetype": "order_TOKEN", "aggregateid": "o-2", "type": "OrderCancelled", "payload": {"orderId": 2}}`, true))
	e.exec(`ROLLBACK TO SAVEPOINT s1`)
	e.exec(emit("customer", `{"id": "m-7", "aggregatetype": "customer_TOKEN", "aggregateid": "c-1", "type": "Note", "payload": "plain text"}`, true))
	e.exec(`COMMIT`)
	e.exec(emit("order", `{"id": "m-8", "aggregatetype": "order_TOKEN", "aggregateid": "nontx", "type": "OrderCreated", "payload": {"orderId": 8}}`, false))
	e.exec(emit("zzend", `{"id": "m-9", "aggregatetype": "zzend_TOKEN", "aggregateid": "end", "type": "End", "payload": {"end": true}}`, true))
}

func uuidOf(i int) string {
	return "00000000-0000-4000-8000-" + strings.Repeat("0", 10) + strconv.Itoa(10+i)
}

func TestOutboxCompatGolden(t *testing.T) {
	testenv.Require(t)
	for _, r := range outboxRuns() {
		t.Run(r.name, func(t *testing.T) { runOutboxCompat(t, r, false) })
	}
}

// TestOutboxCompatDebezium runs Debezium beside pgcdc: with PGCDC_TEST_LONG (make test-long) or
// -update-golden.
func TestOutboxCompatDebezium(t *testing.T) {
	testenv.Require(t)
	if os.Getenv("PGCDC_TEST_LONG") == "" && !*updateGolden {
		t.Skip("the live comparison with Debezium runs in make test-long (TestOutboxCompatGolden checks the recorded records in make test)")
	}
	for _, r := range outboxRuns() {
		t.Run(r.name, func(t *testing.T) { runOutboxCompat(t, r, true) })
	}
}

func runOutboxCompat(t *testing.T, r outboxRun, withDebezium bool) {
	e := newEnv(t, nil, nil)
	start := time.Now()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	tok := "k" + hex.EncodeToString(rnd[:])
	if !r.messages {
		e.exec(outboxTable)
	} else {
		e.exec(`CREATE TABLE public.zz_unused (id int PRIMARY KEY)`) // the publication needs a table
	}
	prefixes := "order_" + tok + ",customer_" + tok + ",zzend_" + tok
	vars := map[string]string{
		"PGCDC_TABLES_INCLUDE":       "public.outbox",
		"PGCDC_KAFKA_PARTITIONS":     strconv.Itoa(r.partitions),
		"PGCDC_EVENTS_KEY_SCHEMAS":   strconv.FormatBool(r.keySchemas),
		"PGCDC_EVENTS_VALUE_SCHEMAS": strconv.FormatBool(r.valueSchemas),
		"PGCDC_HEARTBEAT_INTERVAL":   "0",
		"PGCDC_OUTBOX_TABLES":        "public.outbox",
	}
	if r.messages {
		vars["PGCDC_TABLES_INCLUDE"] = "public.zz_unused"
		delete(vars, "PGCDC_OUTBOX_TABLES")
		vars["PGCDC_OUTBOX_MESSAGES_PREFIXES"] = strings.ReplaceAll(prefixes, ",", "|")
	}
	for k, v := range r.pgcdc {
		vars[k] = v
	}
	p := e.start(vars)
	p.waitStreaming()

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dbzPrefix := e.prefix + "_dbz"
	if withDebezium {
		extra := map[string]string{
			"publication.autocreate.mode":   "filtered",
			"message.prefix.include.list":   prefixes,
			"transforms":                    "outbox,rename",
			"transforms.outbox.type":        "io.debezium.transforms.outbox.EventRouter",
			"transforms.rename.type":        "org.apache.kafka.connect.transforms.RegexRouter",
			"transforms.rename.regex":       "(.*)",
			"transforms.rename.replacement": dbzPrefix + ".routed.$1",
		}
		tables := []string{"public.outbox"}
		if r.messages {
			extra["transforms"] = "decode,outbox,rename"
			extra["transforms.decode.type"] = "io.debezium.connector.postgresql.transforms.DecodeLogicalDecodingMessageContent"
			tables = []string{"public.zz_unused"}
		}
		for k, v := range r.dbz {
			extra["transforms.outbox."+k] = v
		}
		startDebezium(t, ctx, debeziumtest.Options{
			PostgresDSN: e.dsn, Brokers: e.brokers, TopicPrefix: dbzPrefix,
			Slot: testenv.UniqueName(t, "dslot"), Publication: testenv.UniqueName(t, "dpub"),
			Tables: tables, Partitions: r.partitions, Extra: extra,
			KeySchemas: r.keySchemas, ValueSchemas: r.valueSchemas,
		})
	}
	t.Logf("started in %s", time.Since(start).Round(time.Millisecond))

	if r.messages {
		outboxMessageScript(e, tok)
	} else {
		outboxScript(e, tok)
	}
	concrete := func(logical string) string { return strings.ReplaceAll(logical, "TOKEN", tok) }

	if err := waitRecord(ctx, e.brokers, concrete(r.end), 90*time.Second); err != nil {
		t.Fatalf("pgcdc end marker: %v\n%s", err, tail(p.out.String(), 3000))
	}
	topics := append(append([]string(nil), r.topics...), r.end)
	var want map[string][]rec
	if withDebezium {
		if err := waitRecord(ctx, e.brokers, dbzPrefix+".routed."+concrete(r.end), 90*time.Second); err != nil {
			t.Fatalf("Debezium end marker: %v", err)
		}
		want = map[string][]rec{}
		for _, tp := range topics {
			want[tp] = readRouted(t, e.brokers, dbzPrefix+".routed."+concrete(tp), dbzPrefix, tok, 0)
		}
	}
	golden := readGolden(t, r.name, topics)
	got := map[string][]rec{}
	for _, tp := range topics {
		ref := golden[tp]
		if withDebezium {
			ref = want[tp]
		}
		got[tp] = readRouted(t, e.brokers, concrete(tp), e.prefix, tok, countKeyed(ref, r.messages))
	}
	checkOutboxRecords(t, r, got)

	var diffs []string
	for _, tp := range topics {
		if withDebezium {
			diffs = append(diffs, diffRecords(tp, want[tp], got[tp])...)
			if !*updateGolden {
				for _, d := range diffRecords(tp, golden[tp], maskAll(want[tp])) {
					t.Errorf("Debezium's records differ from testdata/compat/%s (rerun with -update-golden if intended): %s", r.name, d)
				}
			}
		} else {
			diffs = append(diffs, diffRecords(tp, golden[tp], got[tp])...)
		}
	}
	if withDebezium && *updateGolden {
		writeGolden(t, r.name, want)
	}
	reportDiffs(t, diffs, nil, outboxAllowed...)
	t.Logf("%d topics compared in %s", len(topics), time.Since(start).Round(time.Millisecond))
}

// waitRecord waits until topic has a record, retrying transient broker errors (a topic just
// created may have no leader yet).
func waitRecord(ctx context.Context, brokers []string, topic string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		_, err := debeziumtest.ReadTopic(ctx, brokers, topic, 1, time.Until(deadline))
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// countKeyed is how many of ref pgcdc must have written: all but the non-transactional message.
func countKeyed(ref []rec, messages bool) int {
	n := 0
	for _, r := range ref {
		if messages && strings.Contains(string(r.normKey), "nontx") {
			continue
		}
		n++
	}
	return n
}

// readRouted reads every record of topic (at least atLeast), with the token and the topic prefix
// normalized.
func readRouted(t *testing.T, brokers []string, topic, prefix, tok string, atLeast int) []rec {
	t.Helper()
	return readTopicNormalized(t, brokers, topic, prefix, atLeast, func(b []byte) []byte {
		if b == nil {
			return nil
		}
		return bytes.ReplaceAll(b, []byte(tok), []byte("TOKEN"))
	})
}

// checkOutboxRecords asserts what the scenario means, whatever Debezium does: the events of
// rolled-back transactions and savepoints are absent, the event deleted in its own transaction is
// present, no event is routed twice.
func checkOutboxRecords(t *testing.T, r outboxRun, got map[string][]rec) {
	t.Helper()
	ids := map[string]int{}
	for _, recs := range got {
		for _, rc := range recs {
			for k, v := range rc.headers {
				if k == "id" || k == "eventId" {
					ids[orderedString(v)]++
				}
			}
		}
	}
	var present, absent []string
	if r.messages {
		present = []string{"m-1", "m-2", "m-3", "m-5", "m-7", "m-9"}
		absent = []string{"m-4", "m-6", "m-8"}
	} else {
		for _, i := range []int{1, 2, 3, 4, 6, 8, 9, 10, 11, 12} {
			present = append(present, uuidOf(i))
		}
		absent = []string{uuidOf(5), uuidOf(7)}
	}
	for _, id := range present {
		if ids[strconv.Quote(id)] != 1 && ids[id] != 1 {
			t.Errorf("event %s routed %d times, want once (ids seen: %v)", id, ids[strconv.Quote(id)]+ids[id], ids)
		}
	}
	for _, id := range absent {
		if ids[strconv.Quote(id)]+ids[id] != 0 {
			t.Errorf("event %s of a rolled-back transaction, savepoint or non-transactional message was routed", id)
		}
	}
}
