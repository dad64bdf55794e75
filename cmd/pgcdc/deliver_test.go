package main

import (
	"context"
	"os"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pgcdc/pgcdc/internal/testenv"
	"github.com/pgcdc/pgcdc/internal/webhooktest"
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
	if os.Getenv("PGCDC_TEST_PROC_LOGS") != "" {
		seenAt := map[webhooktest.Event]int{}
		for i, req := range srv.Accepted() {
			e, _ := webhooktest.EventOf(req.Body)
			if j, ok := seenAt[e]; ok {
				t.Logf("dup %v partition %s offset %s attempt %s first at %d again at %d (kill at %d)", e, req.Header.Get("Pgcdc-Partition"), req.Header.Get("Pgcdc-Offset"), req.Header.Get("Pgcdc-Attempt"), j, i, before)
			} else {
				seenAt[e] = i
			}
		}
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
	_ = http.StatusOK
}
