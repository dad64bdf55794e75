// Package incremental runs incremental snapshots: it re-reads tables chunk by chunk while the
// stream goes on, with the DBLog watermark algorithm (Netflix, 2019) as Debezium 3.6 implements it
// (io.debezium.pipeline.source.snapshot.incremental), and publishes their rows as op "r" events
// with source.snapshot "incremental" that never override a newer change of the stream.
//
// # A window
//
// The reader (Run, on its own connection) reads one chunk at a time:
//
//  1. it registers a window with the pipeline side and writes the low watermark, a
//     non-transactional logical decoding message (pg_logical_emit_message(false, WatermarkPrefix,
//     "open:<id>")): the stream delivers it at its WAL position, between the transactions
//     committed before and after it;
//  2. in one REPEATABLE READ READ ONLY transaction it reads pg_current_snapshot() (which
//     transactions its snapshot does not see), checks the table's description, and selects the
//     chunk: the rows after the last key read, up to the table's last key when it started, at most
//     ChunkRows, in key order; bounds are compared in SQL as row values (ROW(k1, k2) > ROW($1, $2),
//     each column's type and collation), never in Go;
//  3. it hands the rows to the window and writes the high watermark, a transactional message in a
//     transaction of its own ("close:<id>"): delivered at that transaction's commit, which flushes
//     the WAL, so the walsender sends it at once.
//
// The pipeline goroutine sees the stream in WAL order (Observe for every change, Watermark for the
// messages). From the low watermark on, every key the stream changes in the window's table is
// noted; at the high watermark the chunk's rows whose key was not changed are published (through
// the same route stage, sink and tracker as the stream, as part of the watermark's transaction),
// the others dropped: the stream's event, newer, stands. A TRUNCATE in the window drops the whole
// chunk. Rows the chunk did not see because a transaction deleted them are never published, so a
// deleted row cannot come back. Windows follow each other in the WAL (a low watermark is written
// after the previous high one), but up to four may await the pipeline at once: the next chunk is
// read while the stream catches up with the previous high watermark.
//
// # The race the watermarks alone do not close
//
// PostgreSQL writes a transaction's commit record before the transaction becomes visible to new
// snapshots (a synchronous commit flushes the WAL in between; a synchronous standby can make it
// much longer). Such a transaction can precede the low watermark in the WAL, so the stream delivers
// it before the window opens, and yet be invisible to the chunk's snapshot, which then holds the
// row as it was before: published at the high watermark, that older row would override the newer
// streamed event. An implementation that relies on the watermarks' positions alone (Debezium's
// signal table watermarks do) is open to it. pgcdc closes it: the pipeline remembers the (transaction,
// table) pairs of the last 65,536 committed transactions (a ring), and at the high watermark a
// transaction the chunk's snapshot did not see (listed running in pg_current_snapshot(), or at or
// past its xmax) that changed the table before the low watermark sends the chunk to be read again
// in a new window. Read again means a few milliseconds later, when the transaction is visible. The
// ring covers the race as long as fewer than 65,536 transactions with changes commit between the
// racing transaction's commit record and its visibility, which PostgreSQL's commit path makes a
// matter of microseconds to milliseconds (with a synchronous standby: of the standby's
// acknowledgement, during which every later commit waits too).
//
// # Why these watermarks
//
// They need no privilege beyond pgcdc's: pg_logical_emit_message is what pgcdc's heartbeat already
// calls, and a chunk is read in a read-only transaction; no table is written (Debezium's default
// writes its watermarks into the signal table, which needs INSERT there; its read-only variant
// compares transaction ids with pg_current_snapshot() on every event and has the race above, and
// more: it assumes commit order follows transaction id order). A message is exact about its place
// in the WAL, where a snapshot alone is not.
//
// # Progress
//
// The queue of tables (with their filter, surrogate key, last key to read and last key
// acknowledged) is kept per slot in <snapshot.progress_schema>.pgcdc_incremental_snapshot, a table
// every role shares with row-level security (package snapshot's OwnedTable). A chunk is recorded
// done once Kafka acknowledged its rows (the tracker says so), in chunk order; a restart after a
// crash, a kill -9 or a stop reads on from the last chunk recorded: chunks in flight at the crash
// are read again (duplicates), none is skipped. Watermarks of an earlier process found in the WAL
// are ignored (window ids carry a per-process prefix). The slot's row also holds the tables whose
// rows the topics hold (the connector backfills the tables captured later), the Kafka signal
// topic's offset and the commit LSN of the last signal table transaction acted on (SourceActed,
// SourceDone: a transaction the stream sends again after a restart is not acted on twice).
//
// # Signals and the API
//
// Signal acts on execute-snapshot (incremental), stop-snapshot, pause-snapshot, resume-snapshot and
// log signals (package signal parses them); Request is the API for code that decides by itself
// that a table's rows must be published (a table joining the publication while pgcdc runs).
package incremental
