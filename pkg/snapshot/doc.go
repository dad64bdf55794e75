// Package snapshot reads the rows that exist in captured tables before streaming starts (the
// "initial snapshot"): consistently, in parallel, in bounded memory, and resumably.
//
// # Consistency
//
// Every reader runs in a REPEATABLE READ transaction that imports one snapshot with SET
// TRANSACTION SNAPSHOT, so all workers see the database at one instant:
//
//   - a new replication slot is created with EXPORT_SNAPSHOT (pgsource.EnsureSlotExport); that
//     snapshot shows the database exactly at the slot's consistent point, where streaming then
//     begins: nothing is missed and nothing is read twice. The exported snapshot lives only while
//     the replication connection that created the slot stays idle, so Open imports it into every
//     connection first and the caller closes the replication connection right after;
//   - with an existing slot (snapshot modes always and when_needed, or a snapshot resumed after a
//     crash) no such snapshot exists: Open exports a fresh one (pg_export_snapshot) that all
//     workers share. It is newer than the slot's position, so the stream that follows repeats the
//     changes made between the two: a row's snapshot event may be followed by older changes of the
//     same row, but the last event per key is always the row's current state, because every change
//     after the slot's position is streamed after the snapshot's records.
//
// # Chunks
//
// Plan splits each table into chunks of about chunk_rows rows: primary-key (or replica identity
// index) ranges, computed in one ordered pass over the key with row_number(); ctid block ranges
// for tables without a key (PostgreSQL 14's TID range scans); a single chunk for a partitioned
// table without a key. The first chunk of a table has no lower bound and the last no upper bound,
// so any set of boundaries covers the whole table whatever the snapshot. Session.Run hands chunks
// to N workers; each streams its chunk's rows with pgconn (one row in memory at a time, plus one
// row of look-ahead to mark the chunk's last row) and passes them to the caller's Emit, which
// applies Kafka backpressure (kafkasink Reserve), so memory is bounded by the sink, not the table.
//
// # Markers
//
// Records carry source.snapshot as Debezium 3.6.1 sets it (RelationalSnapshotChangeEventSource,
// checked against a live run): "first" for the first row of the snapshot's first table (none when
// that table is empty), "last" for the snapshot's last row, "first_in_data_collection"/
// "last_in_data_collection" for the first/last row of every other table (last wins when a table
// has one row), "true" otherwise. Tables come in the order of tables.include (the tables one
// pattern matches by name), as Debezium orders them by table.include.list. The snapshot's first chunk starts
// before any other chunk is handed out and its last chunk runs alone after all the others, so
// "first" and "last" are the first and last records written, as with Debezium's sequential
// snapshot. Markers come from the plan: when a resumed plan (read under a newer snapshot) has an
// empty final chunk, that table's last_in_data_collection marker is missing.
//
// # Progress and resumption
//
// Progress lives in PostgreSQL beside the data, in the table pgcdc_snapshot_progress (Store): one
// row per slot for the snapshot (pending, running, done) and one per chunk (todo, done). A chunk
// is recorded done only once Kafka acknowledged every one of its records, so after a crash or a
// stop the next start resumes with the chunks not recorded (their rows read again under a fresh
// snapshot; duplicates of the chunks in flight are possible, losses are not). The snapshot row is
// written before the slot is created, so a crash between the two is seen as a snapshot to do.
// One table serves every slot and role: rows carry the role that wrote them and row-level
// security shows each role its own (Store). Progress reports rows done, the estimate
// (pg_class.reltuples; the exact count from the key pass for a table never analyzed), rows/s and
// the ETA.
package snapshot
