// Package decode is the decode stage: it turns pgoutput messages into typed changes (Change) with
// the relation they belong to, in commit order.
//
// Decoder handles protocol versions 1 and 2: a transaction sent whole becomes Begin, its changes,
// Commit; a transaction streamed while in progress (protocol 2) is kept in a spool file until its
// Stream Commit, then decoded the same way, and dropped on Stream Abort (a subtransaction's changes
// alone on ROLLBACK TO SAVEPOINT). Nothing uncommitted leaves the decoder. Unchanged TOAST values
// absent from the new row are taken from the old row when it is there (REPLICA IDENTITY FULL).
//
// Relations keeps one entry per relation OID, rebuilt on every Relation message (PostgreSQL sends
// one before a relation's first change in a session and again after every schema change). Each entry
// joins the message's columns with the catalog: type names (domains resolved to their base type,
// also as array elements), NOT NULL, enum labels, column defaults (as Debezium puts them into the
// schema: defaults.go), and the key columns. The key comes from the catalog as Debezium 3.6 takes
// it (the primary key, else the first unique index by name), never from the Relation message's
// flags: under REPLICA IDENTITY FULL every column is flagged.
//
// Row converts a pgoutput tuple into event.Datums: 'n' null, 'u' unchanged TOAST (value absent,
// never a fake null), 't' text. Binary tuples are not requested and are rejected.
package decode
