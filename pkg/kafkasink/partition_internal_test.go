package kafkasink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/pkg/kafkaclient"
)

// javaMurmur2 follows org.apache.kafka.common.utils.Utils.murmur2 line by line, with Java's signed
// 32-bit int arithmetic (wrapping multiplication, >>> as an unsigned shift). It is written here
// independently of kafka-go's port so that the test checks kafka-go's choice, not itself.
func javaMurmur2(data []byte) int32 {
	length := int32(len(data))
	const seed int32 = -1756908916 // 0x9747b28c
	const m int32 = 0x5bd1e995
	const r = 24
	urs := func(x int32, n uint) int32 { return int32(uint32(x) >> n) } // Java's >>>

	h := seed ^ length
	length4 := length / 4
	for i := int32(0); i < length4; i++ {
		i4 := i * 4
		k := int32(data[i4+0]&0xff) + int32(data[i4+1]&0xff)<<8 + int32(data[i4+2]&0xff)<<16 + int32(data[i4+3]&0xff)<<24
		k *= m
		k ^= urs(k, r)
		k *= m
		h *= m
		h ^= k
	}
	switch length % 4 {
	case 3:
		h ^= int32(data[(length&^3)+2]&0xff) << 16
		fallthrough
	case 2:
		h ^= int32(data[(length&^3)+1]&0xff) << 8
		fallthrough
	case 1:
		h ^= int32(data[length&^3] & 0xff)
		h *= m
	}
	h ^= urs(h, 13)
	h *= m
	h ^= urs(h, 15)
	return h
}

// javaPartition is the Java client's default partitioner for a keyed record:
// Utils.toPositive(Utils.murmur2(keyBytes)) % numPartitions.
func javaPartition(key []byte, numPartitions int) int {
	return int(javaMurmur2(key)&0x7fffffff) % numPartitions
}

// The published vectors of Kafka's own UtilsTest.testMurmur2 (clients/src/test/java/org/apache/kafka/
// common/utils/UtilsTest.java) prove the independent implementation above.
func TestJavaMurmur2Vectors(t *testing.T) {
	cases := []struct {
		key  string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	}
	for _, c := range cases {
		if got := javaMurmur2([]byte(c.key)); got != c.want {
			t.Errorf("murmur2(%q) = %d, want %d (Kafka UtilsTest)", c.key, got, c.want)
		}
	}
}

// testSink is a Sink with one known topic whose partition queues exist already, so Append routes
// into them without starting writer goroutines or touching the network. Other topics do not exist
// and may not be created.
func testSink(t *testing.T, topic string, partitions int, maxMessageBytes int64) *Sink {
	t.Helper()
	s := newSink(Options{Logger: zerolog.Nop(), MaxInFlightBytes: 1 << 30}, nil, nil, missingTopics{})
	info := topicInfo{partitions: make([]int, partitions), maxMessageBytes: maxMessageBytes}
	for i := range info.partitions {
		info.partitions[i] = i
		k := partitionKey{topic, i}
		s.parts[k] = newPartitionQueue(k, 1000, 1<<20)
	}
	s.topics.set(topic, info)
	return s
}

// missingTopics is a cluster where no topic exists.
type missingTopics struct{}

func (missingTopics) Metadata(_ context.Context, req *kafka.MetadataRequest) (*kafka.MetadataResponse, error) {
	res := &kafka.MetadataResponse{}
	for _, name := range req.Topics {
		res.Topics = append(res.Topics, kafka.Topic{Name: name, Error: kafka.UnknownTopicOrPartition})
	}
	return res, nil
}

func (missingTopics) CreateTopics(context.Context, *kafka.CreateTopicsRequest) (*kafka.CreateTopicsResponse, error) {
	return nil, errors.New("not allowed")
}

func (missingTopics) DeleteTopics(context.Context, *kafka.DeleteTopicsRequest) (*kafka.DeleteTopicsResponse, error) {
	return nil, errors.New("not allowed")
}

func (missingTopics) DescribeConfigs(context.Context, *kafka.DescribeConfigsRequest) (*kafka.DescribeConfigsResponse, error) {
	return nil, errors.New("not allowed")
}

// routed returns the partition whose queue holds the record with value v.
func routed(t *testing.T, s *Sink, topic string, v []byte) int {
	t.Helper()
	found := -1
	for k, q := range s.parts {
		if k.topic != topic {
			continue
		}
		for _, r := range q.pending {
			if bytes.Equal(r.rec.Value, v) {
				if found >= 0 {
					t.Fatalf("record %s queued twice", v)
				}
				found = k.partition
			}
		}
	}
	if found < 0 {
		t.Fatalf("record %s not queued", v)
	}
	return found
}

func TestAppendRoutesLikeJavaClient(t *testing.T) {
	ctx := context.Background()
	keys := []string{
		// Kafka UtilsTest vectors.
		"21", "foobar", "a-little-bit-long-string", "a-little-bit-longer-string",
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", "abc",
		// Keys as Kafka Connect's JsonConverter writes them (with and without the schema part).
		`{"id":1}`, `{"id":2}`, `{"id":42}`, `{"id":-7}`, `{"id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}`,
		`{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"}],"optional":false,"name":"demo.public.customers.Key"},"payload":{"id":1}}`,
		"", "x", "xy", "xyz", "wxyz", "€üñ", // every tail length, multibyte bytes (signedness)
	}
	for _, n := range []int{1, 2, 3, 6, 7, 12, 100} {
		s := testSink(t, "t", n, 1<<20)
		for i, k := range keys {
			v := []byte(fmt.Sprintf("v%d", i))
			if err := s.Append(ctx, Record{Topic: "t", Key: []byte(k), Value: v}); err != nil {
				t.Fatal(err)
			}
			if got, want := routed(t, s, "t", v), javaPartition([]byte(k), n); got != want {
				t.Errorf("%d partitions, key %q: partition %d, the Java client picks %d", n, k, got, want)
			}
		}
	}
}

func TestAppendNullKeyGoesToPartitionZero(t *testing.T) {
	ctx := context.Background()
	s := testSink(t, "t", 8, 1<<20)
	for i := 0; i < 20; i++ {
		v := []byte(fmt.Sprintf("v%d", i))
		if err := s.Append(ctx, Record{Topic: "t", Key: nil, Value: v}); err != nil {
			t.Fatal(err)
		}
		if p := routed(t, s, "t", v); p != 0 {
			t.Fatalf("null key routed to partition %d, want 0", p)
		}
	}
	// An empty, non-null key is a key: hashed, not the null-key rule.
	if err := s.Append(ctx, Record{Topic: "t", Key: []byte{}, Value: []byte("empty")}); err != nil {
		t.Fatal(err)
	}
	if got, want := routed(t, s, "t", []byte("empty")), javaPartition(nil, 8); got != want {
		t.Errorf("empty key: partition %d, want %d", got, want)
	}
}

func TestAppendErrorsTakeNoBudget(t *testing.T) {
	ctx := context.Background()
	s := testSink(t, "t", 1, 200)
	small := Record{Topic: "t", Key: []byte("k"), Value: []byte("v")}
	big := Record{Topic: "t", Table: "public.big", Key: []byte(`{"id":1}`), Value: bytes.Repeat([]byte("x"), 500), LSN: 0x1_0000_00A0}
	unknown := Record{Topic: "nope", Value: []byte("v")}
	if err := s.Append(ctx, small); err != nil {
		t.Fatal(err)
	}
	err := s.Append(ctx, big)
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Max != 200 || tl.Size != big.size() {
		t.Fatalf("oversize record: %v", err)
	}
	if err := s.Append(ctx, unknown); err == nil || !strings.Contains(err.Error(), "kafka.create_topics is false") {
		t.Fatalf("unknown topic: %v", err)
	}
	if got := s.InFlight(); got != small.memSize() {
		t.Errorf("in flight %d, want %d (only the queued record)", got, small.memSize())
	}
}

// Append waits while the budget is full, and a context that ends unblocks it with its cause.
func TestAppendWaitsForRoomUntilTheContextEnds(t *testing.T) {
	s := testSink(t, "t", 1, 1<<20)
	s.budget = newBudget(1000)
	rec := Record{Topic: "t", Key: []byte("k"), Value: bytes.Repeat([]byte("v"), 600)}
	if err := s.Append(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	cause := errors.New("hard stop")
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Append(ctx, rec) }()
	select {
	case err := <-done:
		t.Fatalf("Append over the budget returned %v without waiting", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel(cause)
	select {
	case err := <-done:
		if !errors.Is(err, cause) {
			t.Fatalf("Append = %v, want the context's cause", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Append still blocked after its context ended")
	}
}

func q(maxMessages int, maxBytes int64, sizes ...int64) *partitionQueue {
	p := newPartitionQueue(partitionKey{}, maxMessages, maxBytes)
	for i, n := range sizes {
		p.pending = append(p.pending, queued{rec: Record{LSN: pglogrepl.LSN(i)}, size: n})
		p.pendingBytes += n
	}
	return p
}

func TestPartitionQueueTake(t *testing.T) {
	cases := []struct {
		name        string
		maxMessages int
		maxBytes    int64
		sizes       []int64
		batches     []int // batch lengths until empty
	}{
		{"empty", 10, 100, nil, []int{0}},
		{"all fit", 10, 100, []int64{10, 10, 10}, []int{3}},
		{"message limit", 2, 1000, []int64{1, 1, 1, 1, 1}, []int{2, 2, 1}},
		{"byte limit exact", 10, 30, []int64{10, 10, 10, 10}, []int{3, 1}},
		{"byte limit", 10, 25, []int64{10, 10, 10, 10}, []int{2, 2}},
		{"oversize first goes alone", 10, 25, []int64{100, 10, 10}, []int{1, 2}},
		{"oversize in the middle", 10, 25, []int64{10, 100, 10}, []int{1, 1, 1}},
		{"one message per batch", 1, 1000, []int64{5, 5, 5}, []int{1, 1, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := q(c.maxMessages, c.maxBytes, c.sizes...)
			var buf []queued
			next := uint64(0)
			for i, want := range c.batches {
				buf = p.take(buf)
				if len(buf) != want {
					t.Fatalf("batch %d: %d records, want %d", i, len(buf), want)
				}
				var bytes int64
				for _, r := range buf {
					if uint64(r.rec.LSN) != next {
						t.Fatalf("batch %d: record %d out of order (want %d)", i, r.rec.LSN, next)
					}
					next++
					bytes += r.size
				}
				if len(buf) > 1 && bytes > c.maxBytes {
					t.Fatalf("batch %d: %d bytes > limit %d", i, bytes, c.maxBytes)
				}
				// take re-signals while records remain, so the writer loop wakes again.
				remains := len(p.pending) > 0
				select {
				case <-p.notify:
					if !remains {
						t.Fatalf("batch %d: notified with an empty queue", i)
					}
				default:
					if remains {
						t.Fatalf("batch %d: %d records left without a notification", i, len(p.pending))
					}
				}
			}
			if len(p.pending) != 0 {
				t.Fatalf("%d records left", len(p.pending))
			}
		})
	}
}

func TestBudget(t *testing.T) {
	ctx := context.Background()
	never := make(chan struct{})
	within := func(d time.Duration) context.Context {
		c, cancel := context.WithTimeout(ctx, d)
		t.Cleanup(cancel)
		return c
	}
	t.Run("within bound", func(t *testing.T) {
		b := newBudget(100)
		for _, n := range []int64{40, 60} {
			if err := b.acquire(ctx, n, never); err != nil {
				t.Fatalf("acquire %d: %v", n, err)
			}
		}
		if used, _ := b.inUse(); used != 100 {
			t.Fatalf("used %d", used)
		}
	})
	t.Run("full budget waits until the context ends", func(t *testing.T) {
		b := newBudget(100)
		b.acquire(ctx, 90, never)
		if err := b.acquire(within(50*time.Millisecond), 20, never); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("acquire over the bound: %v, want the deadline", err)
		}
		if used, _ := b.inUse(); used != 90 {
			t.Fatalf("a failed acquire took bytes: used %d", used)
		}
	})
	t.Run("a failed sink ends the wait", func(t *testing.T) {
		b := newBudget(100)
		b.acquire(ctx, 90, never)
		failed := make(chan struct{})
		close(failed)
		if err := b.acquire(ctx, 20, failed); !errors.Is(err, errSinkFailed) {
			t.Fatalf("acquire on a failed sink: %v", err)
		}
	})
	t.Run("release wakes a waiter", func(t *testing.T) {
		b := newBudget(100)
		b.acquire(ctx, 90, never)
		done := make(chan error)
		go func() { done <- b.acquire(within(10*time.Second), 50, never) }()
		time.Sleep(20 * time.Millisecond)
		b.release(60)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("waiter not admitted after release: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("waiter not woken by release")
		}
		if used, _ := b.inUse(); used != 80 {
			t.Fatalf("used %d, want 80", used)
		}
	})
	t.Run("partial release is not enough", func(t *testing.T) {
		b := newBudget(100)
		b.acquire(ctx, 90, never)
		b.release(5)
		if err := b.acquire(within(20*time.Millisecond), 50, never); err == nil {
			t.Fatal("admitted over the bound")
		}
	})
	t.Run("oversize alone", func(t *testing.T) {
		b := newBudget(100)
		if err := b.acquire(ctx, 500, never); err != nil {
			t.Fatalf("oversize record with nothing in flight: %v", err)
		}
		if err := b.acquire(within(20*time.Millisecond), 1, never); err == nil {
			t.Fatal("admitted a record next to an oversize one")
		}
		b.release(500)
		if used, _ := b.inUse(); used != 0 {
			t.Fatalf("used %d", used)
		}
	})
	t.Run("oversize waits for an empty budget", func(t *testing.T) {
		b := newBudget(100)
		b.acquire(ctx, 10, never)
		if err := b.acquire(within(20*time.Millisecond), 500, never); err == nil {
			t.Fatal("oversize record admitted while something is in flight")
		}
		done := make(chan error)
		go func() { done <- b.acquire(within(10*time.Second), 500, never) }()
		time.Sleep(20 * time.Millisecond)
		b.release(10)
		if err := <-done; err != nil {
			t.Fatalf("oversize record not admitted once the budget emptied: %v", err)
		}
	})
	t.Run("inUse channel closes on release", func(t *testing.T) {
		b := newBudget(100)
		b.acquire(ctx, 10, never)
		_, ch := b.inUse()
		b.release(10)
		select {
		case <-ch:
		default:
			t.Fatal("channel not closed by release")
		}
	})
}

func TestClassify(t *testing.T) {
	wrapped := func(err error) error { return fmt.Errorf("write: %w", err) }
	cases := []struct {
		name      string
		err       error
		permanent bool
		fix       string
	}{
		{"io.EOF", io.EOF, false, ""},
		{"unexpected EOF", io.ErrUnexpectedEOF, false, ""},
		{"wrapped EOF", wrapped(io.EOF), false, ""},
		{"deadline", context.DeadlineExceeded, false, ""},
		{"LeaderNotAvailable", kafka.LeaderNotAvailable, false, ""},
		{"NotLeaderForPartition", kafka.NotLeaderForPartition, false, ""},
		{"RequestTimedOut", kafka.RequestTimedOut, false, ""},
		{"NotEnoughReplicas", kafka.NotEnoughReplicas, false, ""},
		{"UnknownTopicOrPartition", kafka.UnknownTopicOrPartition, false, ""},
		{"TopicAuthorizationFailed", kafka.TopicAuthorizationFailed, true, "grant this client WRITE"},
		{"MessageSizeTooLarge", kafka.MessageSizeTooLarge, true, "max.message.bytes"},
		{"ClusterAuthorizationFailed", kafka.ClusterAuthorizationFailed, true, "cluster permission"},
		{"wrapped permanent", wrapped(kafka.TopicAuthorizationFailed), true, "WRITE"},
		{"WriteErrors retriable", kafka.WriteErrors{nil, io.EOF, kafka.LeaderNotAvailable}, false, ""},
		{"WriteErrors all nil", kafka.WriteErrors{nil, nil}, false, ""},
		{"WriteErrors with permanent", kafka.WriteErrors{io.EOF, nil, kafka.MessageSizeTooLarge}, true, "max.message.bytes"},
		{"WriteErrors with authorization", kafka.WriteErrors{kafka.TopicAuthorizationFailed}, true, "WRITE"},
		{"wrapped WriteErrors", wrapped(kafka.WriteErrors{kafka.RequestTimedOut, kafka.MessageSizeTooLarge}), true, "max.message.bytes"},
		{"certificate refused on a new connection", wrapped(&kafkaclient.Error{Setting: "kafka.tls.ca_file", Msg: "not trusted", Permanent: true}), true, "kafka.tls.ca_file"},
		{"transient connection problem", wrapped(&kafkaclient.Error{Setting: "kafka.tls.enabled", Msg: "closed"}), false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := classify("demo.public.t", 3, c.err)
			if (p != nil) != c.permanent {
				t.Fatalf("classify(%v) = %v, permanent want %v", c.err, p, c.permanent)
			}
			if p == nil {
				return
			}
			msg := p.Error()
			for _, want := range []string{"demo.public.t", "partition 3", c.fix} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q lacks %q", msg, want)
				}
			}
			var kerr kafka.Error
			var cerr *kafkaclient.Error
			if !errors.As(p, &kerr) && !errors.As(p, &cerr) {
				t.Errorf("PermanentError does not unwrap to the kafka.Error or kafkaclient.Error: %v", p)
			}
		})
	}
}

func TestRecordSizeMonotonic(t *testing.T) {
	base := Record{Key: []byte("k"), Value: []byte("v")}
	grow := []func(r Record) Record{
		func(r Record) Record { r.Key = append(bytes.Clone(r.Key), 'x'); return r },
		func(r Record) Record { r.Value = append(bytes.Clone(r.Value), 'x'); return r },
		func(r Record) Record {
			r.Headers = append(append([]Header(nil), r.Headers...), Header{Key: "h"})
			return r
		},
		func(r Record) Record {
			r.Headers = append(append([]Header(nil), r.Headers...), Header{Key: "h", Value: []byte("12345")})
			return r
		},
	}
	r := base
	prev := r.size()
	if prev <= int64(len(r.Key)+len(r.Value)) {
		t.Fatalf("size %d does not count per-record overhead", prev)
	}
	for i := 0; i < 40; i++ {
		r = grow[i%len(grow)](r)
		if s := r.size(); s <= prev {
			t.Fatalf("step %d: size %d not above %d after growing the record", i, s, prev)
		} else {
			prev = s
		}
	}
	if (&Record{}).size() <= 0 {
		t.Fatal("an empty record (null key, tombstone) has no size")
	}
}

func TestTooLargeErrorMessage(t *testing.T) {
	e := &TooLargeError{Topic: "demo.public.docs", Table: "public.docs", Key: []byte(`{"id":42}`), LSN: 0x1_0000_00A0, Size: 2_000_123, Max: 1_048_588}
	msg := e.Error()
	for _, want := range []string{"public.docs", `{"id":42}`, pglogrepl.LSN(e.LSN).String(), "1/A0", "2000123", "1048588", "demo.public.docs", "max.message.bytes"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	long := &TooLargeError{Table: "public.docs", Key: bytes.Repeat([]byte("k"), 1000), Size: 1, Max: 1}
	if msg := long.Error(); strings.Contains(msg, strings.Repeat("k", 201)) || !strings.Contains(msg, strings.Repeat("k", 200)+"...") {
		t.Errorf("long key not shortened to 200 bytes: %d-byte message", len(msg))
	}
}
