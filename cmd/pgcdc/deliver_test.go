package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgcdc/pgcdc/internal/testenv"
	"github.com/pgcdc/pgcdc/internal/webhooktest"
	"github.com/pgcdc/pgcdc/pkg/deliver"
	"github.com/pgcdc/pgcdc/pkg/deliver/signature"
)

// Two pgcdc deliver processes in one consumer group while events keep arriving and the endpoint
// misbehaves: the second one joining rebalances the partitions; then the first is killed with
// SIGKILL mid-stream and the second takes its partitions over. Every event reaches the endpoint,
// each key's events in order, and the duplicates (the killed process's uncommitted tail) stay
// within partitions × 2 × deliver.max_pending.
func TestDeliverKillAndRebalance(t *testing.T) {
	brokers := testenv.SharedKafka(t)
	bin := buildPgcdc(t)
	topic := testenv.UniqueName(t, "t")
	const partitions, maxPending = 4, 32
	testenv.CreateTopic(t, brokers, topic, partitions)
	srv := webhooktest.New(5)
	defer srv.Close()
	srv.SetFaults(webhooktest.Faults{Status5xx: 0.1, Reset: 0.03, SlowBody: 0.03, Timeout: 0.01, Hang: time.Second, SlowFor: 100 * time.Millisecond})
	env := map[string]string{
		"PGCDC_KAFKA_BROKERS":                 brokers[0],
		"PGCDC_KAFKA_TOPIC_PREFIX":            "t",
		"PGCDC_DELIVER_GROUP_ID":              testenv.UniqueName(t, "g"),
		"PGCDC_DELIVER_METRICS_LISTEN":        "127.0.0.1:0",
		"PGCDC_DELIVER_MAX_PENDING":           strconv.Itoa(maxPending),
		"PGCDC_DELIVER_CONCURRENCY":           "4",
		"PGCDC_DELIVER_RETRY_MAX_ATTEMPTS":    "100",
		"PGCDC_DELIVER_RETRY_INITIAL_BACKOFF": "10ms",
		"PGCDC_DELIVER_RETRY_MAX_BACKOFF":     "200ms",
		"PGCDC_DELIVER_COMMIT_INTERVAL":       "200ms",
		"PGCDC_DELIVER_SESSION_TIMEOUT":       "6s",
		"PGCDC_DELIVER_HEARTBEAT_INTERVAL":    "1s",
		"PGCDC_DELIVER_REBALANCE_TIMEOUT":     "10s",
		"PGCDC_DELIVER_SHUTDOWN_TIMEOUT":      "10s",
		"PGCDC_DELIVER_ROUTES":                routesEnv(t, map[string]any{"name": "items", "url": srv.URL, "topics": []string{topic}, "timeout": "500ms"}),
	}

	// The producer: 30 keys × 60 versions, one version of every key every 100ms.
	const keys, versions = 30, 60
	events := webhooktest.Workload(keys, versions)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var produced sync.WaitGroup
	produced.Add(1)
	var prodErr error
	go func() {
		defer produced.Done()
		for v := 0; v < versions && ctx.Err() == nil; v++ {
			if err := webhooktest.Produce(ctx, brokers, topic, events[v*keys:(v+1)*keys], int64(v*keys*8)); err != nil {
				prodErr = err
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()

	a := startProc(t, "deliver A", bin, env, "deliver")
	waitUntil(t, 60*time.Second, "A delivering", func() bool { return srv.AcceptedCount() >= 100 })
	b := startProc(t, "deliver B", bin, env, "deliver")
	bAddr := b.waitLog(opsAddrRe, 30*time.Second)[1]
	joinedWith := regexp.MustCompile(`"partitions":([1-9])[,}].*joined the consumer group`)
	b.waitLog(joinedWith, 60*time.Second)
	waitUntil(t, 30*time.Second, "B delivering", func() bool { return metric(t, bAddr, "pgcdc_deliver_delivered_total") > 0 })
	before := srv.AcceptedCount()
	a.kill9()
	t.Logf("A killed with SIGKILL after %d accepted requests", before)
	produced.Wait()
	if prodErr != nil {
		t.Fatal(prodErr)
	}
	waitUntil(t, 90*time.Second, "every event delivered", func() bool {
		evs, err := webhooktest.Events(srv.Accepted())
		return err == nil && webhooktest.Check(events, evs, nil).OK()
	})
	if b.waitLog(regexp.MustCompile(`"partitions":`+strconv.Itoa(partitions)+`[,}].*joined the consumer group`), 30*time.Second) == nil {
		t.Fatal("B never held every partition")
	}
	b.stop(30 * time.Second)
	evs, err := webhooktest.Events(srv.Accepted())
	if err != nil {
		t.Fatal(err)
	}
	r := webhooktest.Check(events, evs, nil)
	t.Logf("events %d, accepted %d (distinct %d, duplicates %d); requests %d; injected 5xx %d, resets %d, slow bodies %d, timeouts %d",
		len(events), len(evs), r.Distinct, r.Duplicates, srv.Requests.Load(), srv.Injected[webhooktest.Injected5xx].Load(),
		srv.Injected[webhooktest.InjectedReset].Load(), srv.Injected[webhooktest.InjectedSlowBody].Load(), srv.Injected[webhooktest.InjectedTimeout].Load())
	if os.Getenv(envProcLogs) != "" {
		logDuplicates(t, srv.Accepted(), before)
	}
	if !r.OK() {
		t.Fatalf("missing %v, order %v", r.Missing, r.OrderErrs)
	}
	if bound := partitions * 2 * maxPending; r.Duplicates > bound {
		t.Fatalf("%d duplicates, bound %d", r.Duplicates, bound)
	}
	if before >= len(events) {
		t.Fatal("A was killed after the end: the test proves nothing")
	}
}

// logDuplicates prints every request of an event seen before, with where it came from.
func logDuplicates(t *testing.T, accepted []webhooktest.Request, killedAt int) {
	seenAt := map[webhooktest.Event]int{}
	for i, req := range accepted {
		e, _ := webhooktest.EventOf(req.Body)
		if j, ok := seenAt[e]; ok {
			t.Logf("duplicate %v: partition %s offset %s attempt %s, first at request %d, again at %d (the kill came after %d)",
				e, req.Header.Get(deliver.HeaderPartition), req.Header.Get(deliver.HeaderOffset), req.Header.Get(deliver.HeaderAttempt), j, i, killedAt)
			continue
		}
		seenAt[e] = i
	}
}

// From a table change to the webhook, end to end: pgcdc run streams a table's changes to Kafka,
// pgcdc deliver sends them to three routes of one endpoint, which checks their Standard Webhooks
// signatures. The Hasura route gets Hasura's event-trigger bodies (old and new rows under REPLICA
// IDENTITY FULL, values as PostgreSQL's JSON), the flat route the rows with __op/__table/__lsn;
// the audit route is down, so its events go to the dead-letter topic, and `pgcdc deliver redrive`
// sends them once it is back, with the same event ids.
func TestDeliverEndToEnd(t *testing.T) {
	brokers := testenv.SharedKafka(t)
	dsn := testenv.NewDatabase(t)
	bin := buildPgcdc(t)
	sqlExec(t, dsn, `CREATE TABLE public.orders (id int PRIMARY KEY, amount numeric(10,2), placed_at timestamptz, due date, doc jsonb, note text)`,
		`ALTER TABLE public.orders REPLICA IDENTITY FULL`)
	prefix := testenv.UniqueName(t, "e2e")
	run := startProc(t, "pgcdc run", bin, map[string]string{
		"PGCDC_POSTGRES_DSN":             dsn,
		"PGCDC_POSTGRES_SLOT":            testenv.UniqueName(t, "slot"),
		"PGCDC_POSTGRES_PUBLICATION":     testenv.UniqueName(t, "pub"),
		"PGCDC_POSTGRES_STATUS_INTERVAL": "1s",
		"PGCDC_KAFKA_BROKERS":            brokers[0],
		"PGCDC_KAFKA_TOPIC_PREFIX":       prefix,
		"PGCDC_KAFKA_PARTITIONS":         "2",
		"PGCDC_METRICS_LISTEN":           "127.0.0.1:0",
	}, "run")
	run.waitLog(regexp.MustCompile(`"message":"streaming"`), 60*time.Second)

	secret := signature.NewSecret()
	sec, _ := signature.ParseSecret(secret)
	srv := webhooktest.New(6)
	defer srv.Close()
	srv.SetSecrets(sec)
	var auditDown atomic.Bool
	auditDown.Store(true)
	refused := map[string]bool{}
	var mu sync.Mutex
	srv.SetStatus(func(r *http.Request, _ []byte) int {
		if r.Header.Get(deliver.HeaderRoute) == "audit" && auditDown.Load() {
			mu.Lock()
			refused[r.Header.Get("webhook-id")] = true
			mu.Unlock()
			return http.StatusServiceUnavailable
		}
		return 0
	})
	tables := []string{"public.orders"}
	env := map[string]string{
		"PGCDC_KAFKA_BROKERS":                  brokers[0],
		"PGCDC_KAFKA_TOPIC_PREFIX":             prefix,
		"PGCDC_DELIVER_GROUP_ID":               testenv.UniqueName(t, "g"),
		"PGCDC_DELIVER_METRICS_LISTEN":         "127.0.0.1:0",
		"PGCDC_DELIVER_RETRY_MAX_ATTEMPTS":     "2",
		"PGCDC_DELIVER_RETRY_INITIAL_BACKOFF":  "10ms",
		"PGCDC_DELIVER_TOPIC_REFRESH_INTERVAL": "1s",
		"PGCDC_DELIVER_SESSION_TIMEOUT":        "6s",
		"PGCDC_DELIVER_HEARTBEAT_INTERVAL":     "1s",
		"ORDERS_HOOK_SECRET":                   secret,
		"PGCDC_DELIVER_ROUTES": routesEnv(t,
			map[string]any{"name": "orders-hasura", "url": srv.URL + "/hasura", "tables": tables, "payload": "hasura", "signing_secret_env": "ORDERS_HOOK_SECRET"},
			map[string]any{"name": "orders-flat", "url": srv.URL + "/flat", "tables": tables, "payload": "flat", "signing_secret_env": "ORDERS_HOOK_SECRET"},
			map[string]any{"name": "audit", "url": srv.URL + "/audit", "tables": tables, "signing_secret_env": "ORDERS_HOOK_SECRET"}),
	}
	d := startProc(t, "pgcdc deliver", bin, env, "deliver")
	addr := d.waitLog(opsAddrRe, 30*time.Second)[1]

	sqlExec(t, dsn,
		`INSERT INTO public.orders VALUES (1, 12.50, '2024-05-01 12:00:00+00', '2024-05-03', '{"items": [1, 2]}', 'first')`,
		`INSERT INTO public.orders VALUES (2, 7.00, '2024-05-02 08:30:00+00', '2024-05-04', '{"items": []}', 'second')`,
		`UPDATE public.orders SET amount = 13.75, note = 'changed' WHERE id = 1`,
		`DELETE FROM public.orders WHERE id = 2`)
	byRoute := func(route string) []webhooktest.Request {
		var out []webhooktest.Request
		for _, r := range srv.Accepted() {
			if r.Header.Get(deliver.HeaderRoute) == route {
				out = append(out, r)
			}
		}
		return out
	}
	waitUntil(t, 60*time.Second, "4 events on each live route and 4 dead letters", func() bool {
		return len(byRoute("orders-hasura")) == 4 && len(byRoute("orders-flat")) == 4 && metric(t, addr, "pgcdc_deliver_dead_lettered_total") == 4
	})
	if srv.BadSigned.Load() != 0 {
		t.Fatalf("%d requests failed signature verification", srv.BadSigned.Load())
	}

	// Hasura: one key's events in order (the two keys may interleave).
	type hasuraBody struct {
		Event struct {
			Op   string `json:"op"`
			Data struct {
				Old map[string]any `json:"old"`
				New map[string]any `json:"new"`
			} `json:"data"`
			SessionVariables any `json:"session_variables"`
		} `json:"event"`
		CreatedAt    string `json:"created_at"`
		ID           string `json:"id"`
		DeliveryInfo struct {
			CurrentRetry int `json:"current_retry"`
			MaxRetries   int `json:"max_retries"`
		} `json:"delivery_info"`
		Trigger struct{ Name string }         `json:"trigger"`
		Table   struct{ Schema, Name string } `json:"table"`
	}
	ops := map[float64][]string{}
	var update, del hasuraBody
	for _, r := range byRoute("orders-hasura") {
		var b hasuraBody
		dec := json.NewDecoder(bytes.NewReader(r.Body))
		if err := dec.Decode(&b); err != nil {
			t.Fatalf("hasura body: %v\n%s", err, r.Body)
		}
		row := b.Event.Data.New
		if row == nil {
			row = b.Event.Data.Old
		}
		id := row["id"].(float64)
		ops[id] = append(ops[id], b.Event.Op)
		if b.ID != r.Header.Get("webhook-id") || b.Trigger.Name != "orders-hasura" || b.Table.Schema != "public" || b.Table.Name != "orders" ||
			b.DeliveryInfo.MaxRetries != 1 || b.Event.SessionVariables != nil {
			t.Errorf("hasura envelope: %s (webhook-id %s)", r.Body, r.Header.Get("webhook-id"))
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000000", b.CreatedAt); err != nil {
			t.Errorf("created_at %q: %v", b.CreatedAt, err)
		}
		switch b.Event.Op {
		case "UPDATE":
			update = b
		case "DELETE":
			del = b
		}
	}
	if fmt.Sprint(ops[1]) != "[INSERT UPDATE]" || fmt.Sprint(ops[2]) != "[INSERT DELETE]" {
		t.Fatalf("hasura ops per key: %v", ops)
	}
	if update.Event.Data.Old["amount"] != 12.5 || update.Event.Data.New["amount"] != 13.75 || update.Event.Data.New["note"] != "changed" ||
		update.Event.Data.New["due"] != "2024-05-03" || fmt.Sprint(update.Event.Data.New["doc"]) != "map[items:[1 2]]" ||
		!strings.HasPrefix(fmt.Sprint(update.Event.Data.New["placed_at"]), "2024-05-01T12:00:00") {
		t.Errorf("hasura UPDATE data: %+v", update.Event.Data)
	}
	if del.Event.Data.New != nil || del.Event.Data.Old["note"] != "second" || del.Event.Data.Old["amount"] != 7.0 {
		t.Errorf("hasura DELETE data (REPLICA IDENTITY FULL: the whole old row): %+v", del.Event.Data)
	}
	// Flat: the row plus Debezium's added fields; a delete is the old row with __deleted.
	flatOps := map[float64][]string{}
	for _, r := range byRoute("orders-flat") {
		var b map[string]any
		if err := json.Unmarshal(r.Body, &b); err != nil {
			t.Fatal(err)
		}
		flatOps[b["id"].(float64)] = append(flatOps[b["id"].(float64)], b["__op"].(string)+"/"+b["__deleted"].(string))
		if b["__table"] != "orders" || b["__schema"] != "public" || b["__lsn"] == nil || r.Header.Get(deliver.HeaderLSN) == "" {
			t.Errorf("flat body: %s", r.Body)
		}
	}
	if fmt.Sprint(flatOps[1]) != "[c/false u/false]" || fmt.Sprint(flatOps[2]) != "[c/false d/true]" {
		t.Fatalf("flat ops per key: %v", flatOps)
	}
	d.stop(30 * time.Second)

	// The audit route is back: redrive sends its dead letters, same ids, and exits 0.
	auditDown.Store(false)
	rd := startProc(t, "pgcdc deliver redrive", bin, env, "deliver", "redrive")
	if code := rd.exitCode(60 * time.Second); code != 0 {
		t.Fatalf("redrive exit code %d", code)
	}
	audit := byRoute("audit")
	if len(audit) != 4 {
		t.Fatalf("redrive delivered %d audit events, want 4", len(audit))
	}
	for _, r := range audit {
		if !refused[r.Header.Get("webhook-id")] {
			t.Errorf("redriven event has a new id %s", r.Header.Get("webhook-id"))
		}
	}
	run.stop(60 * time.Second)
}
