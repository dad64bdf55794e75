// Package slotrecord keeps pgcdc's own record of how far it has confirmed a replication slot, and
// checks a slot against it at start-up.
//
// Why: a logical replication slot lives on one server. When a primary fails over to a standby that
// did not have the slot (PostgreSQL before 17, or failover slots off), the slot is gone; if it is
// created again, its confirmed_flush_lsn is the new primary's WAL position at that moment, and every
// change between the last position pgcdc confirmed and that one is silently skipped (Debezium's
// DBZ-5739 class of loss). The record lives in the database itself, so it follows the data through
// physical replication and a failover: after one, a slot ahead of the record is a slot that was
// created again, never the slot pgcdc confirmed.
//
// The record is a row per slot in <schema>.pgcdc_slot_position (DDL), beside the snapshot progress
// table. The invariant: the recorded position is never below any position pgcdc sent as the slot's
// flush position. Guard.Before keeps it: before each status update it records the position about to
// be confirmed, durably (synchronous_commit = local for that one transaction), when it exceeds the
// record. To write rarely, it records the server's current WAL insert position (at least the position
// confirmed): later confirmations up to it need no new write. That position is still below the end of
// the record's own commit, so a slot created after the record was written is always ahead of it.
// For the same reason the position just past that commit is not confirmed until other WAL follows
// (Guard.Before holds the slot at the record): confirming it would take a write per status update
// on an idle server.
//
// At start-up Verify compares the slot with the record:
//   - slot behind or at the record: normal (a PostgreSQL crash rewinds a slot to the position its
//     last checkpoint persisted);
//   - slot ahead of the record: refused with an *AheadError saying how to recover (snapshot.mode:
//     when_needed), unless the slot is a failover slot (PostgreSQL 17+), whose synchronized copy on
//     the new primary is the slot pgcdc confirmed, even when the record written just before its last
//     synchronization had not yet reached the standby.
//
// Privileges: the role needs SELECT, INSERT, UPDATE and DELETE on the table. Open creates it when it
// is missing (CREATE on the schema); the table then belongs to that role, and other roles that run
// pgcdc need those privileges granted (see DDL). Without the table (and without the privilege to
// create it) Open returns ErrNoTable and pgcdc runs without the check, warning.
package slotrecord
