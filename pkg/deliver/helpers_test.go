package deliver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/testenv"
	"github.com/pgcdc/pgcdc/internal/webhooktest"
	"github.com/pgcdc/pgcdc/pkg/deliver/payload"
	"github.com/pgcdc/pgcdc/pkg/deliver/retry"
	"github.com/pgcdc/pgcdc/pkg/deliver/route"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// evt is one test change event: row id (the key) and its version for that key.
type evt struct {
	id, seq int
}

// changeRecord is a Debezium-shaped change event as pgcdc writes it (no schemas), with its
// pgcdc.position header.
func changeRecord(e evt, lsn int64) kafka.Message {
	op := "u"
	if e.seq == 0 {
		op = "c"
	}
	key := fmt.Sprintf(`{"id":%d}`, e.id)
	value := fmt.Sprintf(`{"before":null,"after":{"id":%d,"seq":%d},"source":{"version":"test","connector":"postgresql","name":"t","ts_ms":%d,"snapshot":"false","db":"d","schema":"public","table":"items","txId":1,"lsn":%d},"op":"%s","ts_ms":%d}`,
		e.id, e.seq, time.Now().UnixMilli(), lsn, op, time.Now().UnixMilli())
	return kafka.Message{Key: []byte(key), Value: []byte(value), Headers: []kafka.Header{{Key: payload.HeaderPosition, Value: []byte("0")}}}
}

// produce writes events in order (keys hashed to partitions like the Java client).
func produce(t *testing.T, brokers []string, topic string, events []evt, lsnBase int64) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, BatchSize: 500}
	defer w.Close()
	msgs := make([]kafka.Message, len(events))
	for i, e := range events {
		msgs[i] = changeRecord(e, lsnBase+int64(i)*8)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// workload returns keys × versions events, interleaved the way a busy table changes.
func workload(keys, versions int) []evt {
	var out []evt
	for s := 0; s < versions; s++ {
		for k := 0; k < keys; k++ {
			out = append(out, evt{k, s})
		}
	}
	return out
}

// seen decodes the accepted requests' events (debezium format bodies).
func seen(t *testing.T, reqs []webhooktest.Request) []evt {
	t.Helper()
	out := make([]evt, 0, len(reqs))
	for _, r := range reqs {
		var v struct {
			After struct{ ID, Seq int } `json:"after"`
		}
		if err := json.Unmarshal(r.Body, &v); err != nil {
			t.Fatalf("accepted body is not an event: %v: %s", err, r.Body)
		}
		out = append(out, evt{v.After.ID, v.After.Seq})
	}
	return out
}

// report is what the endpoint saw.
type report struct {
	distinct   int
	duplicates int
	missing    []evt // produced, neither accepted nor dead-lettered
	orderErrs  []string
}

// check compares what the endpoint accepted (in order) with what was produced. Per key, the
// events seen for the first time must come in version order (a redelivered older event may show
// up again later: that is a duplicate, not a reordering). deadLettered events may be missing.
func check(produced, accepted []evt, deadLettered map[evt]bool) report {
	var r report
	first := map[evt]bool{}
	lastNew := map[int]int{}
	for _, e := range accepted {
		if first[e] {
			r.duplicates++
			continue
		}
		first[e] = true
		if prev, ok := lastNew[e.id]; ok && e.seq < prev {
			r.orderErrs = append(r.orderErrs, fmt.Sprintf("key %d: version %d first seen after version %d", e.id, e.seq, prev))
		}
		lastNew[e.id] = e.seq
	}
	r.distinct = len(first)
	for _, e := range produced {
		if !first[e] && !deadLettered[e] {
			r.missing = append(r.missing, e)
		}
	}
	return r
}

// readDLQ reads a dead-letter topic to its end.
func readDLQ(t *testing.T, brokers []string, topic string, want int) []kafka.Message {
	t.Helper()
	msgs, err := testenv.ReadTopic(context.Background(), brokers, topic, want, 30*time.Second)
	if err != nil {
		t.Fatalf("dead-letter topic: %v (got %d)", err, len(msgs))
	}
	return msgs
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func dlqEvent(t *testing.T, m kafka.Message) evt {
	var v struct {
		After struct{ ID, Seq int } `json:"after"`
	}
	if err := json.Unmarshal(m.Value, &v); err != nil {
		t.Fatalf("dead letter value: %v", err)
	}
	return evt{v.After.ID, v.After.Seq}
}

// committed reads the group's committed offsets of topic's partitions.
func committed(t *testing.T, brokers []string, group, topic string, partitions int) map[int]int64 {
	t.Helper()
	ids := make([]int, partitions)
	for i := range ids {
		ids[i] = i
	}
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	res, err := c.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
	if err != nil || res.Error != nil {
		t.Fatalf("offset fetch: %v %v", err, res.Error)
	}
	out := map[int]int64{}
	for _, p := range res.Topics[topic] {
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

// endOffsets reads the partitions' end offsets.
func endOffsets(t *testing.T, brokers []string, topic string, partitions int) map[int]int64 {
	t.Helper()
	ids := make([]int, partitions)
	for i := range ids {
		ids[i] = i
	}
	_, ends, err := partitionOffsets(context.Background(), NewKafka(brokers, "test").client(), map[string][]int{topic: ids})
	if err != nil {
		t.Fatal(err)
	}
	return ends[topic]
}

// testOptions are Options for a test: fast retries, short group timeouts.
func testOptions(t *testing.T, brokers []string, topic, url string) Options {
	rt := &route.Route{Name: "items", URL: url, Topics: []string{topic}, Timeout: 300 * time.Millisecond}
	if err := rt.Compile("t"); err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(io.Discard)
	if testing.Verbose() {
		log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	}
	return Options{
		Kafka: NewKafka(brokers, "pgcdc-deliver-test"), GroupID: testenv.UniqueName(t, "g"), Routes: []*route.Route{rt},
		Concurrency: 4, MaxPending: 200,
		Retry:           retry.Policy{MaxAttempts: 10, InitialBackoff: 5 * time.Millisecond, MaxBackoff: 40 * time.Millisecond},
		DeadLetterTopic: topic + ".dlq", DeadLetterSpec: TopicSpec{Create: true, Partitions: 1, ReplicationFactor: 1},
		CommitInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second, HeartbeatInterval: time.Second,
		RebalanceTimeout: 10 * time.Second, ShutdownTimeout: 10 * time.Second, LagInterval: time.Second,
		TopicRefreshInterval: 2 * time.Second,
		Log:                  log,
	}
}

// runEngine runs an engine in the background; the returned stop cancels it and waits for Run.
func runEngine(t *testing.T, o Options) (*Engine, func() error) {
	t.Helper()
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	stopped := false
	var runErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("engine did not stop within 60s")
			}
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return e, stop
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sortedKeys(m map[int]int64) []int {
	var ks []int
	for k := range m {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	return ks
}

var _ = strconv.Itoa
