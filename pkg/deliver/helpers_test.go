package deliver

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/testenv"
	"github.com/pgcdc/pgcdc/internal/webhooktest"
	"github.com/pgcdc/pgcdc/pkg/deliver/retry"
	"github.com/pgcdc/pgcdc/pkg/deliver/route"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type evt = webhooktest.Event

func produce(t *testing.T, brokers []string, topic string, events []evt, lsnBase int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := webhooktest.Produce(ctx, brokers, topic, events, lsnBase); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func workload(keys, versions int) []evt { return webhooktest.Workload(keys, versions) }

func seen(t *testing.T, reqs []webhooktest.Request) []evt {
	t.Helper()
	evs, err := webhooktest.Events(reqs)
	if err != nil {
		t.Fatalf("accepted body: %v", err)
	}
	return evs
}

func check(produced, accepted []evt, dead map[evt]bool) webhooktest.Report {
	return webhooktest.Check(produced, accepted, dead)
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
	t.Helper()
	e, err := webhooktest.EventOf(m.Value)
	if err != nil {
		t.Fatalf("dead letter value: %v", err)
	}
	return e
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
	_, ends, err := partitionOffsets(context.Background(), PlainKafka(brokers, "test").client(), map[string][]int{topic: ids})
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
		Kafka: PlainKafka(brokers, "pgcdc-deliver-test"), GroupID: testenv.UniqueName(t, "g"), Routes: []*route.Route{rt},
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

// newTopic creates a topic of its own for t on the shared Kafka and writes events to it.
func newTopic(t *testing.T, partitions int, events []evt) (brokers []string, topic string) {
	t.Helper()
	brokers = testenv.SharedKafka(t)
	topic = testenv.UniqueName(t, "t")
	testenv.CreateTopic(t, brokers, topic, partitions)
	if len(events) > 0 {
		produce(t, brokers, topic, events, 1)
	}
	return brokers, topic
}

// runUntilEnd runs an engine with UntilEnd until it returns by itself (a minute at most).
func runUntilEnd(t *testing.T, o Options) *Engine {
	t.Helper()
	o.UntilEnd = true
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Run did not return by itself within a minute")
	}
	return e
}
