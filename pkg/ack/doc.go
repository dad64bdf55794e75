// Package ack tracks which transactions Kafka has acknowledged and derives the one LSN pgcdc may
// confirm to PostgreSQL: the end LSN of the newest transaction whose events, and the events of every
// earlier transaction, are all acknowledged (invariant 1 of the design notes).
//
// Transactions are registered in commit order (Begin, then Add for each event handed to the sink,
// then Commit with the transaction's end LSN); Position registers a bare position (a keepalive's WAL
// end) the same way. Acknowledgements arrive in any order from the sink's partition writers and are
// counted with Ack. Safe returns the confirmable LSN; Changed wakes waiters (the source's status
// update, a clean stop, the snapshot's chunk recorder) when it moves or a transaction completes, so
// nobody polls. A Tracker is safe for concurrent use: the pipeline registers, the sink's goroutines
// acknowledge.
package ack
