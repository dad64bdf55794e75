// Package spool keeps the streamed changes of large in-progress transactions on local disk until
// PostgreSQL says whether they commit.
//
// With pgoutput protocol v2 and streaming on, PostgreSQL sends the changes of a big transaction
// before it ends, in blocks (StreamStart ... StreamStop) that interleave with other transactions,
// and only later a StreamCommit or StreamAbort. Nothing uncommitted may ever reach Kafka and memory
// must stay flat whatever the size of a transaction, so the stream goroutine appends every streamed
// message to a file of its top-level transaction (Append), drops aborted subtransactions or whole
// transactions (Abort), and at StreamCommit replays the surviving messages in the order they
// arrived (Commit, then Iterator.Next until it returns false, then Iterator.Close).
//
// # Memory
//
// Writes go through a 64 KiB bufio.Writer per open file. At most 32 files are open for writing
// at once (many small streamed transactions can be in progress together); the least recently used
// one is flushed and closed when another is needed and reopened in append mode on demand, so the
// write buffers never exceed 2 MiB. Commit reads the file back in a streaming fashion with one
// record buffer that grows to the largest record. The only per-transaction state in memory is a
// few counters and the set of aborted subtransaction xids.
//
// When a subtransaction is aborted (ROLLBACK TO SAVEPOINT) its records are skipped at replay. If
// they are the last records of the file (the common case: the savepoint's work was just streamed),
// the file is truncated to drop them at once and their bytes are released from the bound, so a
// loop of savepoint rollbacks does not fill the disk.
//
// # File format
//
// One file per top-level transaction, named "<xid>-<seq>.spool" in the spool directory (seq is a
// counter of the Spool, so a transaction id seen again never collides with a file still being
// replayed). The file is a plain sequence of records, each a 16-byte little-endian header
//
//	subxid uint32 | lsn uint64 | length uint32
//
// followed by length bytes of the raw pgoutput message. There is no file header and no checksum:
// the Spool knows how many bytes it wrote to each file, and replay reports a file whose size
// differs, a record header cut short or a length running past the end of the file as an error
// wrapping ErrCorrupt that names the file.
//
// # Never resumed
//
// Spool files never survive a restart or a reconnect: Open deletes the *.spool files a previous
// run left in the directory, and the caller calls Reset when the replication connection is
// re-established. This is safe because pgcdc confirms to PostgreSQL only LSNs of transactions
// whose events Kafka acknowledged; after a reconnect PostgreSQL decodes again from the confirmed
// position and streams every in-progress transaction again from its beginning. For the same reason
// no fsync is done. Files in the directory that do not end in ".spool" are left alone, so a
// mistyped spool_dir cannot wipe unrelated data.
//
// # Bound
//
// maxBytes bounds the total size of all spool files (records including headers, of transactions
// in progress and of those being replayed until their Iterator is closed). An Append that would
// exceed it fails with an error wrapping ErrFull; the remedy is to raise postgres.spool_max_bytes
// or to turn postgres.streaming off (PostgreSQL then spills big transactions to its own disk and
// sends them only once committed).
//
// # Concurrency
//
// A Spool and its Iterators are used by one goroutine (the replication stream's); they do no
// locking and are not safe for concurrent use.
package spool
