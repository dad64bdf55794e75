package metrics

import "github.com/prometheus/client_golang/prometheus"

// incrementalMetrics are the incremental snapshot's series.
type incrementalMetrics struct {
	rows, estimate           *prometheus.GaugeVec
	read, published, dropped prometheus.Counter
	chunks, rereads          prometheus.Counter
	queued, paused           prometheus.Gauge
}

func newIncremental(reg *prometheus.Registry) *incrementalMetrics {
	i := &incrementalMetrics{
		rows: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pgcdc_incremental_snapshot_rows",
			Help: "Rows of the table's current (or last) incremental snapshot published and acknowledged so far."}, []string{"table"}),
		estimate: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pgcdc_incremental_snapshot_rows_estimated",
			Help: "Rows the table's current (or last) incremental snapshot is expected to read (pg_class.reltuples when it started; 0 unknown)."}, []string{"table"}),
		read: prometheus.NewCounter(prometheus.CounterOpts{Name: "pgcdc_incremental_snapshot_rows_read_total",
			Help: "Rows incremental snapshots read, chunks read again included."}),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "pgcdc_incremental_snapshot_rows_published_total",
			Help: "Rows incremental snapshots published (op \"r\", source.snapshot \"incremental\")."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "pgcdc_incremental_snapshot_rows_dropped_total",
			Help: "Rows dropped from a chunk because the stream changed them between its watermarks (the stream's newer event stands)."}),
		chunks: prometheus.NewCounter(prometheus.CounterOpts{Name: "pgcdc_incremental_snapshot_chunks_total",
			Help: "Chunks (windows) incremental snapshots published."}),
		rereads: prometheus.NewCounter(prometheus.CounterOpts{Name: "pgcdc_incremental_snapshot_chunks_reread_total",
			Help: "Chunks read again because a transaction their snapshot did not see had already been streamed before the low watermark."}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pgcdc_incremental_snapshot_tables_queued",
			Help: "Tables an incremental snapshot still has to read, the one being read included."}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pgcdc_incremental_snapshot_paused",
			Help: "1 while incremental snapshots are paused (pause-snapshot signal)."}),
	}
	reg.MustRegister(i.rows, i.estimate, i.read, i.published, i.dropped, i.chunks, i.rereads, i.queued, i.paused)
	return i
}

// IncrementalTable sets the progress of table's incremental snapshot.
func (m *Metrics) IncrementalTable(table string, rows, estimate int64) {
	if m == nil {
		return
	}
	m.incr.rows.WithLabelValues(table).Set(float64(rows))
	m.incr.estimate.WithLabelValues(table).Set(float64(estimate))
}

// IncrementalChunk counts one incremental snapshot window.
func (m *Metrics) IncrementalChunk(read, published, dropped int64, reread bool) {
	if m == nil {
		return
	}
	m.incr.read.Add(float64(read))
	if reread {
		m.incr.rereads.Inc()
		return
	}
	m.incr.published.Add(float64(published))
	m.incr.dropped.Add(float64(dropped))
	m.incr.chunks.Inc()
}

// IncrementalState sets the tables queued and the pause state.
func (m *Metrics) IncrementalState(queued int, paused bool) {
	if m == nil {
		return
	}
	m.incr.queued.Set(float64(queued))
	m.incr.paused.Set(b2f(paused))
}
