// Package lease lets several pgcdc processes share one replication slot: one holds the slot's lease
// and streams (active), the others wait in Acquire (standby).
//
// The lease is a PostgreSQL session advisory lock on a connection of its own. The holder proves it
// is alive with a heartbeat query every TakeoverAfter/8; pg_stat_activity.state_change shows when
// its session last ran one. A process that is killed loses its connection and with it the lock, so
// a standby takes over within its poll interval. A process that is frozen (SIGSTOP, a stalled VM)
// keeps its connections open, and PostgreSQL would keep its walsender until wal_sender_timeout: a
// standby that sees the heartbeat silent for TakeoverAfter terminates the holder's lease session and
// the slot's walsender (pg_terminate_backend) and takes the lease.
//
// A frozen process that thaws finds its lease session gone (Lost closes) and stops; what it had in
// flight to Kafka is fenced there by the producer epoch of its transactional id, which the new
// holder bumped when it started (kafkasink, ha.transactional_id).
package lease
