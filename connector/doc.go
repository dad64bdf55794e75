// Package connector is pgcdc's run loop: it wires the WAL stream (pgsource) through decoding
// (decode) and event encoding (event) into the Kafka sink (kafkasink), and confirms to PostgreSQL
// only what the acknowledgement tracker (ack) says Kafka holds.
//
//	PostgreSQL ──pgoutput──▶ stream loop ──records──▶ kafkasink ──acks──▶ ack.Tracker
//	     ▲                        │                                            │
//	     └── status update ◀──────┴──────────── safe LSN ◀─────────────────────┘
//
// One goroutine (the stream loop) owns the replication connection: it receives, decodes, encodes
// and enqueues, and it alone sends status updates, at the configured interval, when the server asks,
// and while it waits for room in the sink (backpressure stops reading, never the status updates, so
// a stalled broker cannot make the walsender time out).
//
// Lifecycle: Run checks the server, syncs the publication, prepares the topics and the slot, runs
// the initial snapshot when one is due (snapshot.go, package snapshot), then streams. A broken PostgreSQL connection is retried with backoff, resuming from the greater of the
// slot's confirmed_flush_lsn and the last LSN this process knows Kafka acknowledged; permanent errors
// (authentication, missing slot or publication, a record Kafka can never take) end Run with an error
// that says what to do. On shutdown (ctx cancelled) Run finishes the transaction it is in, waits for
// Kafka to acknowledge everything in flight (bounded by shutdown_timeout), confirms, and returns nil:
// a clean stop leaves nothing to re-send.
//
// State: see package pgsource. The slot is the only durable progress record.
package connector
