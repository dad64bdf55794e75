package metrics

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Error kinds counted by pgcdc_errors_total{kind}.
const (
	ErrKafkaWrite        = "kafka_write"        // a batch write attempt failed (retried when transient)
	ErrReplicationStream = "replication_stream" // the replication connection broke; pgcdc reconnects
	ErrFatal             = "fatal"              // an error that ended the process (see the log)
	ErrStartup           = "startup"            // start-up failed (see the log)
	ErrSlotPoll          = "slot_poll"          // reading the slot's state from PostgreSQL failed
)

// Probe is what the connector reports when asked at scrape time.
type Probe struct {
	InFlightEvents int64 // events handed to Kafka and not yet acknowledged
	InFlightBytes  int64 // their bytes (the kafka.max_in_flight_bytes budget in use)
	Acked          int64 // events acknowledged by Kafka since start
}

// Slot is the replication slot's state as PostgreSQL reports it.
type Slot struct {
	ServerWALEnd   uint64 // pg_current_wal_lsn()
	ConfirmedFlush uint64 // confirmed_flush_lsn
	RestartLSN     uint64 // restart_lsn: WAL from here on is retained for the slot
	WALStatus      string // reserved, extended, unreserved, lost
	SafeWALSize    int64  // bytes that can still be written before the slot is in danger; -1 when unbounded
	Active         bool
}

// WALStatuses are the values of pg_replication_slots.wal_status, one series each.
var WALStatuses = []string{"reserved", "extended", "unreserved", "lost"}

// commit is a transaction whose acknowledgement is awaited, for the replication lag.
type commit struct {
	end  uint64
	time time.Time
}

// maxCommits bounds the remembered commits: beyond it, the newest entry absorbs the next commit
// (so the lag is computed as if the two were one transaction, a slight overestimate).
const maxCommits = 4096

// Metrics is pgcdc's metrics registry and readiness state.
type Metrics struct {
	reg *prometheus.Registry
	now func() time.Time

	// StallAfter is how long acknowledgements may be absent while events are in flight before
	// Ready says no. Set before use.
	StallAfter time.Duration

	events         *prometheus.CounterVec
	eventCounters  sync.Map // eventKey -> prometheus.Counter: the label lookup once per table and op
	recordsWritten prometheus.Counter
	bytesWritten   prometheus.Counter
	writeLatency   prometheus.Histogram
	reconnects     prometheus.Counter
	errors         *prometheus.CounterVec
	snapshotDone   *prometheus.GaugeVec
	snapshotTotal  *prometheus.GaugeVec
	tablesSkipped  prometheus.Gauge
	incr           *incrementalMetrics // incremental.go
	ha             *haMetrics          // ha.go

	mu        sync.Mutex
	probe     func() Probe
	streaming bool
	// standby: waiting for the slot's lease (ha.go), on whom (standbyWhy).
	standby    bool
	standbyWhy string
	// Confirmed position and the server's WAL end as the replication protocol reports them.
	confirmed, serverEnd uint64
	statusSeen           bool
	caughtUp             bool
	caughtUpAt           time.Time
	ackedCommit          time.Time // commit time of the newest acknowledged transaction
	commits              []commit  // committed transactions not yet confirmed, in commit order
	// Acknowledgement flow (readiness).
	lastAcked     int64
	lastAckChange time.Time
	// Slot state polled from the server.
	slot       Slot
	slotSeen   bool      // slot holds the state of the last poll, which succeeded and found the slot
	polled     bool      // a poll has reported (SetSlot, SlotMissing or SlotUnknown)
	pollOK     bool      // the last poll succeeded
	lastPollOK time.Time // when a poll last succeeded
}

// New returns a Metrics with every pgcdc metric registered, plus the Go runtime and process
// collectors. version is exported as pgcdc_build_info{version}.
func New(version string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), now: time.Now, StallAfter: time.Minute}
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgcdc_events_total",
		Help: "Change events handed to Kafka, by table (schema.table) and Debezium op (c, u, d, r for snapshot reads, t for truncates). Tombstones are not counted; see pgcdc_kafka_records_written_total.",
	}, []string{"table", "op"})
	m.recordsWritten = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pgcdc_kafka_records_written_total",
		Help: "Records Kafka acknowledged (change events and tombstones), re-sent ones included.",
	})
	m.bytesWritten = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pgcdc_kafka_bytes_written_total",
		Help: "Bytes of the records Kafka acknowledged (keys, values and headers, before compression).",
	})
	m.writeLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "pgcdc_kafka_write_duration_seconds",
		Help:    "Time of each batch write to Kafka until its acknowledgement (successful attempts; failed ones count in pgcdc_errors_total{kind=\"kafka_write\"}).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	m.reconnects = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pgcdc_reconnects_total",
		Help: "Times the replication stream broke and pgcdc reconnected.",
	})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgcdc_errors_total",
		Help: "Errors by kind: kafka_write (failed batch write attempt), replication_stream (broken replication connection), slot_poll (slot state unreadable), startup, fatal.",
	}, []string{"kind"})
	m.snapshotDone = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pgcdc_snapshot_rows",
		Help: "Rows of the table's current (or last) snapshot published so far; 0 before any snapshot. A gauge: a new snapshot starts it again at 0.",
	}, []string{"table"})
	m.snapshotTotal = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pgcdc_snapshot_rows_estimated",
		Help: "Rows the table's current (or last) snapshot is expected to publish (from pg_class.reltuples, or counted by the chunk planner); 0 before any snapshot.",
	}, []string{"table"})
	m.tablesSkipped = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pgcdc_tables_skipped",
		Help: "Tables tables.include selects that pgcdc leaves out of the publication because they have no replica identity (publishing them would make the application's UPDATE and DELETE fail); the log names them and the fix.",
	})
	for _, kind := range []string{ErrKafkaWrite, ErrReplicationStream, ErrFatal, ErrStartup, ErrSlotPoll} {
		m.errors.WithLabelValues(kind)
	}

	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pgcdc_build_info", Help: "Always 1; the version label is the pgcdc release.",
			ConstLabels: prometheus.Labels{"version": version},
		}, func() float64 { return 1 }),
		m.events, m.recordsWritten, m.bytesWritten, m.writeLatency, m.reconnects, m.errors,
		m.snapshotDone, m.snapshotTotal, m.tablesSkipped,
		gauge("pgcdc_in_flight_events", "Events handed to Kafka and not yet acknowledged.",
			func() float64 { return float64(m.readProbe().InFlightEvents) }),
		gauge("pgcdc_in_flight_bytes", "Bytes of the records not yet acknowledged (bounded by kafka.max_in_flight_bytes).",
			func() float64 { return float64(m.readProbe().InFlightBytes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pgcdc_events_acknowledged_total",
			Help: "Events Kafka acknowledged since the process started (read from the acknowledgement tracker)."},
			func() float64 { return float64(m.readProbe().Acked) }),
		gauge("pgcdc_confirmed_lsn", "LSN (as a byte position) pgcdc last confirmed to PostgreSQL as flushed: everything before it is in Kafka.",
			func() float64 { m.mu.Lock(); defer m.mu.Unlock(); return float64(m.confirmed) }),
		gauge("pgcdc_replication_lag_seconds", "Seconds (millisecond resolution) between now and the commit time of the newest transaction Kafka acknowledged, while changes are pending; 0 when caught up with the server's WAL end.",
			func() float64 { return m.ReplicationLag().Truncate(time.Millisecond).Seconds() }),
		gauge("pgcdc_streaming", "1 while a replication session streams, 0 while starting or reconnecting.",
			func() float64 { m.mu.Lock(); defer m.mu.Unlock(); return b2f(m.streaming) }),
		gauge("pgcdc_ready", "1 when /readyz answers 200 (streaming with acknowledgements flowing, or a standby waiting to take over).",
			func() float64 { ok, _ := m.Ready(); return b2f(ok) }),
		&slotCollector{m: m},
	)
	m.incr = newIncremental(m.reg)
	m.ha = newHA(m)
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Registry returns the Prometheus registry (for tests and extra collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// SetProbe installs the function read at scrape time for the in-flight and acknowledged counts.
func (m *Metrics) SetProbe(f func() Probe) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.probe = f
	m.mu.Unlock()
}

func (m *Metrics) readProbe() Probe {
	m.mu.Lock()
	f := m.probe
	m.mu.Unlock()
	if f == nil {
		return Probe{}
	}
	return f()
}

// TablesSkipped sets the number of selected tables left out for lack of a replica identity.
func (m *Metrics) TablesSkipped(n int) {
	if m == nil {
		return
	}
	m.tablesSkipped.Set(float64(n))
}

// Tables makes the per-table series exist (at 0) for the captured tables, so rates and snapshot
// progress are defined from the start.
func (m *Metrics) Tables(tables []string) {
	if m == nil {
		return
	}
	for _, t := range tables {
		for _, op := range []string{"c", "u", "d", "r"} {
			m.events.WithLabelValues(t, op)
		}
		m.snapshotDone.WithLabelValues(t)
		m.snapshotTotal.WithLabelValues(t)
	}
}

// Event counts one change event of table (schema.table) with Debezium op code op ('c', 'u', 'd',
// 'r', 't') handed to Kafka. A truncate event counts once per table it names.
func (m *Metrics) Event(table string, op byte) {
	if m == nil {
		return
	}
	k := eventKey{table, op}
	if c, ok := m.eventCounters.Load(k); ok {
		c.(prometheus.Counter).Inc()
		return
	}
	c := m.events.WithLabelValues(table, string(op))
	m.eventCounters.Store(k, c)
	c.Inc()
}

type eventKey struct {
	table string
	op    byte
}

// KafkaWrite records one batch write attempt: its records and bytes, how long it took, and
// whether it failed.
func (m *Metrics) KafkaWrite(records int, bytes int64, took time.Duration, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.errors.WithLabelValues(ErrKafkaWrite).Inc()
		return
	}
	m.recordsWritten.Add(float64(records))
	m.bytesWritten.Add(float64(bytes))
	m.writeLatency.Observe(took.Seconds())
}

// Reconnect counts a reconnect of the replication stream.
func (m *Metrics) Reconnect() {
	if m == nil {
		return
	}
	m.reconnects.Inc()
}

// Error counts an error of kind (one of the Err* constants).
func (m *Metrics) Error(kind string) {
	if m == nil {
		return
	}
	m.errors.WithLabelValues(kind).Inc()
}

// SnapshotProgress sets the initial snapshot's progress for table.
func (m *Metrics) SnapshotProgress(table string, done, total int64) {
	if m == nil {
		return
	}
	m.snapshotDone.WithLabelValues(table).Set(float64(done))
	m.snapshotTotal.WithLabelValues(table).Set(float64(total))
}

// Streaming records whether a replication session is streaming. A session that ends is no longer
// known to be caught up.
func (m *Metrics) Streaming(on bool) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.streaming = on
	if !on {
		m.caughtUp = false
	}
	m.lastAckChange = m.now() // the stall clock restarts with each session
}

// Committed records that the transaction ending at end (its commit record's end LSN) was committed
// at commitTime and its events were handed to Kafka.
func (m *Metrics) Committed(end uint64, commitTime time.Time) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := len(m.commits); n > 0 && end <= m.commits[n-1].end {
		return // sent again after a reconnect: already waiting
	}
	if end <= m.confirmed {
		return
	}
	if n := len(m.commits); n >= maxCommits {
		m.commits[n-1] = commit{end: end, time: commitTime}
		return
	}
	m.commits = append(m.commits, commit{end: end, time: commitTime})
}

// Confirmed records a status update: flush is the LSN confirmed to PostgreSQL (everything before it
// is acknowledged by Kafka) and serverEnd the server's WAL end as the replication protocol last
// reported it.
func (m *Metrics) Confirmed(flush, serverEnd uint64) {
	if m == nil {
		return
	}
	p := m.readProbe()
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if flush > m.confirmed {
		m.confirmed = flush
	}
	if serverEnd > m.serverEnd {
		m.serverEnd = serverEnd
	}
	m.statusSeen = true
	n := 0
	for n < len(m.commits) && m.commits[n].end <= flush {
		if t := m.commits[n].time; t.After(m.ackedCommit) {
			m.ackedCommit = t
		}
		n++
	}
	if n > 0 {
		m.commits = append(m.commits[:0], m.commits[n:]...)
	}
	m.caughtUp = m.confirmed >= m.serverEnd && len(m.commits) == 0
	if m.caughtUp {
		m.caughtUpAt = now
	}
	m.sampleAcks(p, now)
}

// sampleAcks restarts the stall clock when acknowledgements moved or nothing is in flight.
// Callers hold mu.
func (m *Metrics) sampleAcks(p Probe, now time.Time) {
	if p.Acked != m.lastAcked || p.InFlightEvents == 0 || m.lastAckChange.IsZero() {
		m.lastAcked = p.Acked
		m.lastAckChange = now
	}
}

// ReplicationLag is now minus the commit time of the newest transaction Kafka acknowledged, while
// changes are pending, and 0 once the connector is caught up with the server's WAL end (as of the
// last status update). Being caught up at time X means everything committed before X is in Kafka,
// so the reference time is never older than the last time the connector was caught up: a write
// after an idle hour does not show an hour of lag. Before anything was acknowledged or caught up,
// the oldest transaction waiting for acknowledgement is the reference.
func (m *Metrics) ReplicationLag() time.Duration {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.statusSeen || m.caughtUp {
		return 0
	}
	ref := m.ackedCommit
	if m.caughtUpAt.After(ref) {
		ref = m.caughtUpAt
	}
	if ref.IsZero() && len(m.commits) > 0 {
		ref = m.commits[0].time
	}
	if ref.IsZero() {
		return 0
	}
	if d := m.now().Sub(ref); d > 0 {
		return d
	}
	return 0
}

// Ready reports whether pgcdc is streaming with acknowledgements flowing, and if not, why. A
// standby (ha.enabled, waiting for the lease) is ready; its reason starts with "standby".
func (m *Metrics) Ready() (bool, string) {
	if m == nil {
		return false, "no metrics"
	}
	p := m.readProbe()
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sampleAcks(p, now)
	if m.standby {
		// A standby does its job by waiting: ready, so that a rolling update can go on (the body
		// and pgcdc_ha_active tell it from the active process).
		return true, "standby: waiting to take over; " + m.standbyWhy
	}
	if !m.streaming {
		return false, "not streaming: starting, or reconnecting to PostgreSQL (see the log)"
	}
	if p.InFlightEvents > 0 {
		if stalled := now.Sub(m.lastAckChange); stalled >= m.StallAfter {
			return false, fmt.Sprintf("no Kafka acknowledgement for %s while %d events (%d bytes) are in flight: check the brokers (see the log)",
				stalled.Round(time.Second), p.InFlightEvents, p.InFlightBytes)
		}
	}
	return true, "streaming"
}

// SetSlot stores the replication slot's state as polled from PostgreSQL.
func (m *Metrics) SetSlot(s Slot) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.slot, m.slotSeen = s, true
	m.polled, m.pollOK, m.lastPollOK = true, true, m.now()
	m.mu.Unlock()
}

// SlotMissing records a poll that found no slot of that name: the slot series disappear.
func (m *Metrics) SlotMissing() {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.slot, m.slotSeen = Slot{}, false
	m.polled, m.pollOK, m.lastPollOK = true, true, m.now()
	m.mu.Unlock()
}

// SlotUnknown records a poll that could not read the slot's state (PostgreSQL down or
// unreachable): the slot series disappear rather than repeat the last values, and
// pgcdc_slot_poll_success turns 0, until a poll succeeds again. It also counts a slot_poll error.
func (m *Metrics) SlotUnknown() {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.slot, m.slotSeen = Slot{}, false
	m.polled, m.pollOK = true, false
	m.mu.Unlock()
	m.errors.WithLabelValues(ErrSlotPoll).Inc()
}

// slotCollector exports the polled slot state (nothing until the first poll).
type slotCollector struct{ m *Metrics }

var (
	slotLagDesc = prometheus.NewDesc("pgcdc_slot_lag_bytes",
		"Server WAL end (pg_current_wal_lsn) minus the slot's confirmed_flush_lsn: WAL not yet confirmed by pgcdc.", nil, nil)
	slotRetainedDesc = prometheus.NewDesc("pgcdc_slot_retained_wal_bytes",
		"Server WAL end minus the slot's restart_lsn: WAL PostgreSQL keeps on disk for the slot.", nil, nil)
	slotStatusDesc = prometheus.NewDesc("pgcdc_slot_wal_status",
		"1 for the slot's current wal_status (reserved, extended, unreserved, lost), 0 for the others.", []string{"status"}, nil)
	slotSafeDesc = prometheus.NewDesc("pgcdc_slot_safe_wal_size_bytes",
		"Bytes of WAL that can still be written before the slot is invalidated (-1: unbounded, max_slot_wal_keep_size = -1).", nil, nil)
	slotActiveDesc = prometheus.NewDesc("pgcdc_slot_active",
		"1 when a walsender holds the slot.", nil, nil)
	serverEndDesc = prometheus.NewDesc("pgcdc_server_wal_end_lsn",
		"The server's WAL end (pg_current_wal_lsn) at the last poll, as a byte position.", nil, nil)
	pollSuccessDesc = prometheus.NewDesc("pgcdc_slot_poll_success",
		"1 when the last poll of the slot's state succeeded; 0 when PostgreSQL could not be asked, and the pgcdc_slot_* series (and pgcdc_server_wal_end_lsn) are then absent: unknown, not stale.", nil, nil)
	pollTimeDesc = prometheus.NewDesc("pgcdc_slot_poll_last_success_timestamp_seconds",
		"Unix time of the last successful poll of the slot's state (absent before the first).", nil, nil)
)

func (c *slotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{slotLagDesc, slotRetainedDesc, slotStatusDesc, slotSafeDesc, slotActiveDesc, serverEndDesc, pollSuccessDesc, pollTimeDesc} {
		ch <- d
	}
}

func (c *slotCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	s, seen, polled, ok, last := c.m.slot, c.m.slotSeen, c.m.polled, c.m.pollOK, c.m.lastPollOK
	c.m.mu.Unlock()
	if !polled {
		return // never polled: pgcdc runs without slot polling (metrics off) or has just started
	}
	ch <- prometheus.MustNewConstMetric(pollSuccessDesc, prometheus.GaugeValue, b2f(ok))
	if !last.IsZero() {
		ch <- prometheus.MustNewConstMetric(pollTimeDesc, prometheus.GaugeValue, float64(last.UnixMilli())/1000)
	}
	if !seen {
		return
	}
	diff := func(a, b uint64) float64 {
		if a > b {
			return float64(a - b)
		}
		return 0
	}
	ch <- prometheus.MustNewConstMetric(slotLagDesc, prometheus.GaugeValue, diff(s.ServerWALEnd, s.ConfirmedFlush))
	ch <- prometheus.MustNewConstMetric(slotRetainedDesc, prometheus.GaugeValue, diff(s.ServerWALEnd, s.RestartLSN))
	for _, st := range WALStatuses {
		ch <- prometheus.MustNewConstMetric(slotStatusDesc, prometheus.GaugeValue, b2f(s.WALStatus == st), st)
	}
	ch <- prometheus.MustNewConstMetric(slotSafeDesc, prometheus.GaugeValue, float64(s.SafeWALSize))
	ch <- prometheus.MustNewConstMetric(slotActiveDesc, prometheus.GaugeValue, b2f(s.Active))
	ch <- prometheus.MustNewConstMetric(serverEndDesc, prometheus.GaugeValue, float64(s.ServerWALEnd))
}
