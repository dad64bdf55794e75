// Package pgsource is pgcdc's side of the PostgreSQL replication protocol: connections (a regular
// one for catalog queries and a replication one for the WAL stream), the checks a setup must pass
// (wal_level, server version), the replication slot and the publication, and the message stream.
//
// Only the goroutine that reads a ReplicationConn may write to it: status updates are sent from the
// same loop that receives (pgconn is not safe for a concurrent send and receive).
//
// Where pgcdc keeps its state: the replication slot's confirmed_flush_lsn is the one durable record
// of progress and the authority for where streaming resumes. pgcdc keeps nothing else on disk: in a
// process it holds the last acknowledged LSN (ack.Tracker) and resumes a reconnect from
// max(confirmed_flush_lsn, that LSN); the streaming spool is scratch space deleted on every
// (re)connect. Snapshot progress is kept in PostgreSQL beside the data it describes, in the table
// pgcdc_snapshot_progress (package snapshot).
package pgsource
