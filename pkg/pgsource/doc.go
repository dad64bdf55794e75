// Package pgsource is pgcdc's side of the PostgreSQL replication protocol: connections (a regular
// one for catalog queries and a replication one for the WAL stream), the checks a setup must pass
// (wal_level, server version), the replication slot and the publication, the message stream, and
// the periodic jobs that run beside it on connections of their own.
//
// Stream is the source stage. Its Run owns one replication connection at a time: it starts
// replication at max(the slot's confirmed_flush_lsn, the Position it is handed), delivers Messages
// in WAL order on a channel (a MessageSession first, then MessageData and MessageKeepalive),
// answers keepalives, and sends status updates carrying the Position's safe LSN — within
// StreamOptions.ConfirmDelay (1 s) of a change, and at least every status interval while nothing
// changes or while the receiver does not keep up (backpressure stops reading, never the status
// updates). It never computes the safe position itself. A transient failure (restart, dropped
// connection, terminated walsender, a slot another process holds) is logged and retried with
// backoff; a permanent one (slot or publication missing, slot invalidated, privileges lost) ends
// Run with what to do.
//
// Only the goroutine that reads the replication connection writes to it (pgconn is not safe for a
// concurrent send and receive): status updates come from Run's goroutine.
//
// Where pgcdc keeps its state: the replication slot's confirmed_flush_lsn is the one durable record
// of progress and the authority for where streaming resumes. In a process the tracker holds the
// last acknowledged LSN, and a reconnect resumes from max(confirmed_flush_lsn, that LSN); the
// streaming spool is scratch space deleted on every (re)connect. Snapshot progress is kept in
// PostgreSQL beside the data it describes, in the table pgcdc_snapshot_progress (package snapshot).
package pgsource
