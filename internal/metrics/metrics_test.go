package metrics

import (
	"errors"
	"io"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newTest() (*Metrics, *clock) {
	c := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	m := New("test")
	m.now = c.now
	return m, c
}

func TestCountersAndHistogram(t *testing.T) {
	m, _ := newTest()
	m.Tables([]string{"public.a"})
	if got := testutil.ToFloat64(m.events.WithLabelValues("public.a", "d")); got != 0 {
		t.Errorf("pre-created series = %v, want 0", got)
	}
	m.Event("public.a", 'c')
	m.Event("public.a", 'c')
	m.Event("public.b", 'u')
	if got := testutil.ToFloat64(m.events.WithLabelValues("public.a", "c")); got != 2 {
		t.Errorf("events{public.a,c} = %v, want 2", got)
	}
	m.KafkaWrite(3, 300, 20*time.Millisecond, nil)
	m.KafkaWrite(2, 100, time.Second, errors.New("broker down"))
	if got := testutil.ToFloat64(m.recordsWritten); got != 3 {
		t.Errorf("records written = %v, want 3 (failed attempts do not count)", got)
	}
	if got := testutil.ToFloat64(m.bytesWritten); got != 300 {
		t.Errorf("bytes written = %v, want 300", got)
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues(ErrKafkaWrite)); got != 1 {
		t.Errorf("kafka_write errors = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(m.writeLatency); n != 1 {
		t.Errorf("histogram series = %d", n)
	}
	m.Reconnect()
	m.Error(ErrReplicationStream)
	if testutil.ToFloat64(m.reconnects) != 1 || testutil.ToFloat64(m.errors.WithLabelValues(ErrReplicationStream)) != 1 {
		t.Error("reconnect/error not counted")
	}
	m.SnapshotProgress("public.a", 5, 10)
	if testutil.ToFloat64(m.snapshotDone.WithLabelValues("public.a")) != 5 || testutil.ToFloat64(m.snapshotTotal.WithLabelValues("public.a")) != 10 {
		t.Error("snapshot progress not set")
	}
}

// A nil *Metrics is a valid no-op, so code paths without metrics need no checks.
func TestNilIsNoop(t *testing.T) {
	var m *Metrics
	m.Event("x", 'c')
	m.KafkaWrite(1, 1, time.Millisecond, nil)
	m.Committed(1, time.Now())
	m.Confirmed(1, 1)
	m.Streaming(true)
	m.SetProbe(nil)
	m.SetSlot(Slot{})
	m.Tables([]string{"a"})
	m.Error(ErrFatal)
	m.Reconnect()
	m.SnapshotProgress("a", 1, 1)
	if m.ReplicationLag() != 0 {
		t.Error("nil lag")
	}
	if ok, _ := m.Ready(); ok {
		t.Error("nil metrics ready")
	}
}

func TestReplicationLag(t *testing.T) {
	m, c := newTest()
	if m.ReplicationLag() != 0 {
		t.Fatal("lag before any status")
	}
	t0 := c.t
	// Two transactions committed at t0 and t0+1s, handed to Kafka; nothing confirmed yet.
	m.Committed(100, t0)
	m.Committed(200, t0.Add(time.Second))
	c.add(5 * time.Second)
	m.Confirmed(50, 300)
	// Nothing acknowledged and never caught up: the oldest waiting transaction is the reference.
	if got := m.ReplicationLag(); got != 5*time.Second {
		t.Errorf("lag with nothing acknowledged = %s, want 5s", got)
	}
	// The first is acknowledged: now minus its commit time.
	m.Confirmed(100, 300)
	if got := m.ReplicationLag(); got != 5*time.Second {
		t.Errorf("lag after the first ack = %s, want 5s", got)
	}
	c.add(2 * time.Second)
	if got := m.ReplicationLag(); got != 7*time.Second {
		t.Errorf("lag grows while stuck: %s, want 7s", got)
	}
	m.Confirmed(200, 300)
	if got := m.ReplicationLag(); got != 6*time.Second {
		t.Errorf("lag after the second ack = %s, want 6s (now - t0+1s)", got)
	}
	// Caught up with the server's WAL end: 0.
	m.Confirmed(300, 300)
	if got := m.ReplicationLag(); got != 0 {
		t.Errorf("caught up: lag %s, want 0", got)
	}
	// An idle hour, then a new transaction: the reference is the last time caught up, not the
	// hour-old commit.
	c.add(time.Hour)
	m.Confirmed(300, 300)
	caughtUp := c.t
	c.add(500 * time.Millisecond)
	m.Committed(400, c.t)
	c.add(500 * time.Millisecond)
	m.Confirmed(300, 400)
	if got := m.ReplicationLag(); got != c.t.Sub(caughtUp) {
		t.Errorf("lag after idle = %s, want %s", got, c.t.Sub(caughtUp))
	}
	// A session that ends is no longer known to be caught up.
	m.Confirmed(400, 400)
	m.Streaming(false)
	c.add(3 * time.Second)
	if got := m.ReplicationLag(); got != 3*time.Second {
		t.Errorf("lag while disconnected = %s, want 3s", got)
	}
}

func TestCommitsBounded(t *testing.T) {
	m, c := newTest()
	for i := 1; i <= 3*maxCommits; i++ {
		m.Committed(uint64(i), c.t.Add(time.Duration(i)*time.Millisecond))
	}
	if len(m.commits) != maxCommits {
		t.Fatalf("%d commits remembered, want %d", len(m.commits), maxCommits)
	}
	m.Committed(5, c.t) // a re-sent transaction after a reconnect is ignored
	if len(m.commits) != maxCommits || m.commits[len(m.commits)-1].end != 3*maxCommits {
		t.Error("re-sent commit was recorded")
	}
	m.Confirmed(3*maxCommits, 3*maxCommits)
	if len(m.commits) != 0 || m.ReplicationLag() != 0 {
		t.Errorf("after confirming everything: %d commits, lag %s", len(m.commits), m.ReplicationLag())
	}
}

func TestReadiness(t *testing.T) {
	m, c := newTest()
	m.StallAfter = 30 * time.Second
	var p Probe
	m.SetProbe(func() Probe { return p })
	if ok, why := m.Ready(); ok || !strings.Contains(why, "not streaming") {
		t.Errorf("before streaming: %v %q", ok, why)
	}
	m.Streaming(true)
	if ok, _ := m.Ready(); !ok {
		t.Error("streaming, nothing in flight: not ready")
	}
	// Events in flight and acknowledgements moving: ready.
	p = Probe{InFlightEvents: 10, InFlightBytes: 1000, Acked: 5}
	for i := 0; i < 5; i++ {
		c.add(20 * time.Second)
		p.Acked++
		if ok, why := m.Ready(); !ok {
			t.Fatalf("acks flowing but not ready: %s", why)
		}
	}
	// Acknowledgements stop while events are in flight: not ready after StallAfter.
	c.add(20 * time.Second)
	if ok, _ := m.Ready(); !ok {
		t.Error("not ready before StallAfter")
	}
	c.add(15 * time.Second)
	ok, why := m.Ready()
	if ok || !strings.Contains(why, "no Kafka acknowledgement for 35s") || !strings.Contains(why, "10 events") {
		t.Errorf("stalled: %v %q", ok, why)
	}
	// They resume: ready again.
	p.Acked++
	if ok, why := m.Ready(); !ok {
		t.Errorf("acks resumed, not ready: %s", why)
	}
	// Nothing in flight for long: still ready (idle is fine).
	p.InFlightEvents = 0
	c.add(10 * time.Minute)
	if ok, _ := m.Ready(); !ok {
		t.Error("idle: not ready")
	}
	m.Streaming(false)
	if ok, _ := m.Ready(); ok {
		t.Error("not streaming, but ready")
	}
}

func TestExposition(t *testing.T) {
	m, _ := newTest()
	m.SetProbe(func() Probe { return Probe{InFlightEvents: 3, InFlightBytes: 4096, Acked: 7} })
	m.Confirmed(0x1000, 0x1000)
	m.SetSlot(Slot{ServerWALEnd: 0x3000, ConfirmedFlush: 0x1000, RestartLSN: 0x800, WALStatus: "extended", SafeWALSize: -1, Active: true})
	m.Tables([]string{"public.t"})
	m.Event("public.t", 'c')
	m.Event("public.t", 't')
	m.SnapshotProgress("public.t", 5, 460)
	m.IncrementalTable("public.t", 1024, 5000)
	m.IncrementalChunk(1024, 1020, 4, false)
	m.IncrementalChunk(1024, 0, 0, true)
	m.IncrementalState(2, true)
	m.KafkaWrite(1, 10, time.Millisecond, nil)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`pgcdc_events_total{op="c",table="public.t"} 1`,
		"pgcdc_in_flight_events 3",
		"pgcdc_in_flight_bytes 4096",
		"pgcdc_events_acknowledged_total 7",
		"# TYPE pgcdc_events_acknowledged_total counter",
		`pgcdc_events_total{op="t",table="public.t"} 1`,
		`pgcdc_events_total{op="r",table="public.t"} 0`,
		`pgcdc_snapshot_rows{table="public.t"} 5`,
		`pgcdc_snapshot_rows_estimated{table="public.t"} 460`,
		`pgcdc_incremental_snapshot_rows{table="public.t"} 1024`,
		`pgcdc_incremental_snapshot_rows_estimated{table="public.t"} 5000`,
		"pgcdc_incremental_snapshot_rows_read_total 2048",
		"pgcdc_incremental_snapshot_rows_published_total 1020",
		"pgcdc_incremental_snapshot_rows_dropped_total 4",
		"pgcdc_incremental_snapshot_chunks_total 1",
		"pgcdc_incremental_snapshot_chunks_reread_total 1",
		"pgcdc_incremental_snapshot_tables_queued 2",
		"pgcdc_incremental_snapshot_paused 1",
		"pgcdc_slot_poll_success 1",
		"pgcdc_slot_poll_last_success_timestamp_seconds 1.7672688e+09",
		"pgcdc_confirmed_lsn 4096",
		"pgcdc_slot_lag_bytes 8192",
		"pgcdc_slot_retained_wal_bytes 10240",
		`pgcdc_slot_wal_status{status="extended"} 1`,
		`pgcdc_slot_wal_status{status="lost"} 0`,
		"pgcdc_slot_safe_wal_size_bytes -1",
		"pgcdc_slot_active 1",
		"pgcdc_replication_lag_seconds 0",
		`pgcdc_build_info{version="test"} 1`,
		"pgcdc_kafka_write_duration_seconds_bucket",
		`pgcdc_errors_total{kind="fatal"} 0`,
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	// Every pgcdc metric is exposed above, so promlint sees each one.
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	descs := make(chan *prometheus.Desc, 100)
	go func() { m.Registry().Describe(descs); close(descs) }()
	exposed := string(body)
	for d := range descs {
		name := regexp.MustCompile(`fqName: "([^"]+)"`).FindStringSubmatch(d.String())[1]
		if strings.HasPrefix(name, "pgcdc_") && !strings.Contains(exposed, "\n"+name) && !strings.Contains(exposed, "# TYPE "+name+" ") {
			t.Errorf("%s is registered but not exposed in this test, so promlint did not check it", name)
		}
	}
}

// While PostgreSQL cannot be asked, the slot series disappear (unknown, not stale) and
// pgcdc_slot_poll_success says so; a missing slot has no series either.
func TestSlotStaleness(t *testing.T) {
	m, c := newTest()
	scrape := func() string {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	if body := scrape(); strings.Contains(body, "pgcdc_slot_") {
		t.Errorf("slot series before any poll:\n%s", body)
	}
	m.SlotUnknown()
	if body := scrape(); !strings.Contains(body, "pgcdc_slot_poll_success 0") || strings.Contains(body, "pgcdc_slot_poll_last_success") {
		t.Errorf("first poll failed: %s", grepLines(body, "pgcdc_slot"))
	}
	m.SetSlot(Slot{ServerWALEnd: 0x3000, ConfirmedFlush: 0x1000, WALStatus: "reserved", Active: true})
	if body := scrape(); !strings.Contains(body, "pgcdc_slot_active 1") || !strings.Contains(body, "pgcdc_slot_poll_success 1") {
		t.Errorf("after a poll: %s", grepLines(body, "pgcdc_slot"))
	}
	c.add(time.Minute)
	m.SlotUnknown()
	body := scrape()
	for _, gone := range []string{"pgcdc_slot_active", "pgcdc_slot_lag_bytes", "pgcdc_slot_retained_wal_bytes", "pgcdc_slot_wal_status", "pgcdc_server_wal_end_lsn"} {
		if strings.Contains(body, "\n"+gone) {
			t.Errorf("%s still exposed while PostgreSQL is down", gone)
		}
	}
	if !strings.Contains(body, "pgcdc_slot_poll_success 0") || !strings.Contains(body, "pgcdc_slot_poll_last_success_timestamp_seconds 1.7672688e+09") {
		t.Errorf("down: %s", grepLines(body, "pgcdc_slot"))
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues(ErrSlotPoll)); got != 2 {
		t.Errorf("slot_poll errors = %v, want 2", got)
	}
	m.SlotMissing()
	if body := scrape(); strings.Contains(body, "pgcdc_slot_active") || !strings.Contains(body, "pgcdc_slot_poll_success 1") {
		t.Errorf("slot missing: %s", grepLines(body, "pgcdc_slot"))
	}
}

func grepLines(body, substr string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, substr) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
