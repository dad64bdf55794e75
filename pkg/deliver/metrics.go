package deliver

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is pgcdc deliver's Prometheus registry and readiness state.
type Metrics struct {
	reg *prometheus.Registry

	delivered    *prometheus.CounterVec
	retries      *prometheus.CounterVec
	failed       *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	skipped      *prometheus.CounterVec
	requestTime  *prometheus.HistogramVec
	endToEnd     *prometheus.HistogramVec
	commits      prometheus.Counter
	commitErrors prometheus.Counter
	generations  prometheus.Counter
	lag          *prometheus.GaugeVec

	// Totals read by tests and redrive's summary. NoAnswer counts the attempts that got no HTTP
	// answer (timeout, broken connection): the endpoint may have processed them, so each can
	// cause one duplicate.
	Totals struct {
		Delivered, DeadLettered, Skipped, Attempts, NoAnswer atomic.Int64
	}

	mu         sync.Mutex
	member     bool
	generation int32
	partitions int
	waitReason string
	pending    func() (pending, waiting int) // read at scrape time
}

// NewMetrics returns the registry with every pgcdc deliver metric and the Go runtime and process
// collectors.
func NewMetrics(version string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), waitReason: "starting"}
	m.delivered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgcdc_deliver_delivered_total",
		Help: "Events an endpoint answered 2xx to, by route (redeliveries after a restart or rebalance count again).",
	}, []string{"route"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgcdc_deliver_retries_total",
		Help: "Attempts after an event's first, by route.",
	}, []string{"route"})
	m.failed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgcdc_deliver_failed_attempts_total",
		Help: "Attempts that did not get a 2xx, by route and reason: status_5xx, status_4xx, status_other, timeout, connection, payload (on_failure hold: the event cannot be put in the route's format).",
	}, []string{"route", "reason"})
	m.deadLettered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgcdc_deliver_dead_lettered_total",
		Help: "Events written to the dead-letter topic, by route and reason: permanent (a 4xx/3xx answer), max_attempts, max_age, payload (the event cannot be put in the route's format), route (redrive: the route is not configured).",
	}, []string{"route", "reason"})
	m.skipped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgcdc_deliver_skipped_total",
		Help: "Records not delivered, by reason: no_route (no route takes it), tombstone, not_change_event, op (the route's format cannot express the op).",
	}, []string{"reason"})
	m.requestTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "pgcdc_deliver_request_duration_seconds",
		Help:    "Duration of each attempt (request sent to status received, or the failure), by route.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"route"})
	m.endToEnd = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "pgcdc_deliver_latency_seconds",
		Help:    "From the change's commit in PostgreSQL (source.ts_ms; the record timestamp for other records) to the 2xx answer, by route.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800},
	}, []string{"route"})
	m.commits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pgcdc_deliver_offset_commits_total", Help: "Offset commits to the consumer group.",
	})
	m.commitErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pgcdc_deliver_offset_commit_errors_total", Help: "Offset commits that failed (retried at the next interval).",
	})
	m.generations = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pgcdc_deliver_rebalances_total", Help: "Consumer group generations this process joined (the first included).",
	})
	m.lag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pgcdc_deliver_consumer_lag",
		Help: "Records of an assigned partition after the position deliver would commit now: the log end offset minus that position.",
	}, []string{"topic", "partition"})
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pgcdc_build_info", Help: "Always 1; the version label is the pgcdc release.",
			ConstLabels: prometheus.Labels{"version": version, "command": "deliver"},
		}, func() float64 { return 1 }),
		m.delivered, m.retries, m.failed, m.deadLettered, m.skipped, m.requestTime, m.endToEnd,
		m.commits, m.commitErrors, m.generations, m.lag,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pgcdc_deliver_pending_events",
			Help: "Records read and not finished (being delivered, waiting for a retry, or queued behind an earlier event of their key).",
		}, func() float64 { p, _ := m.readPending(); return float64(p) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pgcdc_deliver_waiting_retries",
			Help: "Deliveries waiting for their next attempt (with on_failure: hold, also those held after giving up).",
		}, func() float64 { _, w := m.readPending(); return float64(w) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pgcdc_deliver_assigned_partitions", Help: "Partitions assigned to this process in the current generation.",
		}, func() float64 { m.mu.Lock(); defer m.mu.Unlock(); return float64(m.partitions) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pgcdc_deliver_ready", Help: "1 when /readyz answers 200 (a member of the consumer group).",
		}, func() float64 {
			if ok, _ := m.Ready(); ok {
				return 1
			}
			return 0
		}),
	)
	for _, r := range []string{"no_route", "tombstone", "not_change_event", "op"} {
		m.skipped.WithLabelValues(r)
	}
	return m
}

// Registry returns the Prometheus registry.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Ready is the /readyz answer: ready while a member of a consumer group generation.
func (m *Metrics) Ready() (bool, string) {
	if m == nil {
		return false, "no metrics"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.member {
		return false, "not ready: " + m.waitReason
	}
	return true, fmt.Sprintf("ok: generation %d, %d partitions assigned", m.generation, m.partitions)
}

// Routes makes the per-route series exist (at 0) from the start.
func (m *Metrics) Routes(names []string) {
	if m == nil {
		return
	}
	for _, n := range names {
		m.delivered.WithLabelValues(n)
		m.retries.WithLabelValues(n)
		for _, r := range []string{"status_5xx", "status_4xx", "status_other", "timeout", "connection"} {
			m.failed.WithLabelValues(n, r)
		}
	}
}

func (m *Metrics) setWaiting(reason string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.member, m.waitReason, m.partitions = false, reason, 0
	m.mu.Unlock()
}

func (m *Metrics) joined(generation int32, partitions int) {
	if m == nil {
		return
	}
	m.generations.Inc()
	m.mu.Lock()
	m.member, m.generation, m.partitions = true, generation, partitions
	m.mu.Unlock()
	m.lag.Reset()
}

func (m *Metrics) setPending(f func() (int, int)) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.pending = f
	m.mu.Unlock()
}

func (m *Metrics) readPending() (int, int) {
	m.mu.Lock()
	f := m.pending
	m.mu.Unlock()
	if f == nil {
		return 0, 0
	}
	return f()
}

func (m *Metrics) attempt(route string, took time.Duration, retry bool, failReason string) {
	if m == nil {
		return
	}
	m.Totals.Attempts.Add(1)
	m.requestTime.WithLabelValues(route).Observe(took.Seconds())
	if retry {
		m.retries.WithLabelValues(route).Inc()
	}
	if failReason != "" {
		m.failed.WithLabelValues(route, failReason).Inc()
	}
	if failReason == "timeout" || failReason == "connection" {
		m.Totals.NoAnswer.Add(1)
	}
}

func (m *Metrics) delivery(route string, latency time.Duration) {
	if m == nil {
		return
	}
	m.Totals.Delivered.Add(1)
	m.delivered.WithLabelValues(route).Inc()
	m.endToEnd.WithLabelValues(route).Observe(max(latency, 0).Seconds())
}

func (m *Metrics) deadLetter(route, reason string) {
	if m == nil {
		return
	}
	m.Totals.DeadLettered.Add(1)
	m.deadLettered.WithLabelValues(route, reason).Inc()
}

func (m *Metrics) skip(reason string) {
	if m == nil {
		return
	}
	m.Totals.Skipped.Add(1)
	m.skipped.WithLabelValues(reason).Inc()
}

func (m *Metrics) commit(err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.commitErrors.Inc()
		return
	}
	m.commits.Inc()
}

func (m *Metrics) setLag(topic string, partition int, lag int64) {
	if m == nil {
		return
	}
	m.lag.WithLabelValues(topic, strconv.Itoa(partition)).Set(float64(max(lag, 0)))
}
