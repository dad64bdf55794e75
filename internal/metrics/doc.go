// Package metrics holds pgcdc's Prometheus metrics and its readiness state.
//
// One *Metrics is created per process (New) and handed to the connector, which reports to it from
// the points where things happen: an event handed to Kafka (Event), a transaction's commit
// (Committed), a status update confirming a position to PostgreSQL (Confirmed), the replication
// session starting and ending (Streaming), a reconnect (Reconnect), an error (Error). The Kafka sink
// reports every batch write (KafkaWrite). Values that are cheaper to read than to push (events and
// bytes in flight, acknowledged count) come from a Probe the connector installs (SetProbe) and are
// read at scrape time. The slot's server-side state (WAL end, confirmed flush, wal_status) is polled
// from PostgreSQL by the caller and stored with SetSlot.
//
// Every method is safe for concurrent use and does nothing on a nil *Metrics, so code paths without
// metrics (unit tests) need no checks.
//
// Handler serves the registry in the Prometheus text format; Ready reports readiness for /readyz:
// streaming, and Kafka acknowledging what is in flight (no acknowledgement for StallAfter while
// events are in flight means not ready). docs/operations.md explains every metric and the alerts
// worth setting.
package metrics
