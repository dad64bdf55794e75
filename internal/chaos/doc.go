// Package chaos is pgcdc's fault-injection harness: it proves, under faults produced for real on this
// machine, that nothing committed is lost, that the events of every key appear in commit order, that
// the last event of every key equals the row's final state, and that duplicates stay within the bound
// docs/faults.md states for each kind of fault.
//
// Run starts a dedicated PostgreSQL and a three-broker Kafka cluster with a dedicated controller
// (internal/testenv; or uses the cluster in Options.Cluster), builds the pgcdc binary (without -race)
// and runs it as a child process configured by PGCDC_* variables, with topics of replication factor 3
// and min.insync.replicas 2. Then, for Options.Duration:
//
//   - Writers commit transactions of 1 to 50,000 rows of inserts, updates and deletes over a bounded
//     key set in three tables (int, bigint and text keys; REPLICA IDENTITY DEFAULT and FULL), and roll
//     a few back. Every transaction also inserts its row in chaos_ledger (its id, its xid), in the same
//     transaction. Each writer owns a disjoint share of the keys and keeps a model of which exist, so it
//     knows every change it made. When a commit fails (a PostgreSQL restart), the writer reconnects,
//     waits until the old backend is gone and reads the ledger: the row is there exactly when the
//     transaction committed.
//   - Three fault lanes run at once, one per thing a fault disturbs: pgcdc (connector-kill,
//     conn-drop), PostgreSQL (walsender-terminate, pg-restart-fast, pg-restart-immediate) and Kafka
//     (broker-pause, broker-restart, broker-kill, leader-kill, leader-freeze, rolling-restart,
//     isr-loss). kinds.go holds the fault table: each kind's class (cheap, heavy, extra), lane, share of
//     its lane's turns and inject function. A lane injects a fault, waits for it to recover (the
//     slot's confirmed_flush_lsn passes the WAL position at its end) but at most RecoveryWait (a
//     watcher goes on measuring), pauses, waits until the slot has moved since its previous fault
//     began, and picks the next kind: kinds behind the pace their minimum asks for first, else by
//     weight. Faults of one lane never overlap; faults of different lanes do, so their
//     interleavings are exercised too.
//   - A fault counts only with its evidence (the killed process's wait status, a new pid, /proc showing
//     a stopped JVM, leadership that moved, pg_postmaster_start_time() that changed, a walsender gone
//     and another holding the slot; isr-loss proves from the slot that pgcdc confirmed nothing while two
//     brokers were down). Each fault records its duplicate window: the slot's confirmed_flush_lsn
//     before it (floor; for an immediate restart the lower of that and the slot's position after the
//     restart) and the server's WAL position when it was over (ceiling).
//   - A monitor reads the slot and the WAL position every 250 ms: each fault's recovery time and
//     longest stall (no progress while changes were pending) come from it.
//   - A WAL scanner (pg_walinspect) records the end LSN of every commit as it happens, so that each
//     duplicated transaction can be placed against the fault windows.
//
// At the end the writers stop, pgcdc catches up (the slot passes the last commit), gets SIGTERM and
// must exit 0, and every topic is read from the beginning. The verification: every committed change
// is present (identified by table, key, ledger transaction and operation); nothing else is (rolled
// back transactions never appear); the events of each key first appear in commit order; every delete
// is followed by its tombstone; for every key the last event equals the row in PostgreSQL; every
// duplicate lies in the window of a fault that may re-send it (a transaction copied n extra times
// needs n such faults). Result.Write prints the run and, per kind, the count, events lost, duplicates
// against the window, and the longest stall and recovery.
//
//	res, err := chaos.Run(ctx, chaos.Options{Duration: 60 * time.Minute, Logf: log.Printf})
//	res.Write(os.Stdout)
//	if err == nil { err = res.Err() }
//
// TestClusterFaults (the cluster faults one at a time) and TestShortChaos (the other kinds, three
// lanes) run inside `make test` on one shared cluster, longer in `make test-long`; `make chaos
// DURATION=60m` runs internal/cmd/chaos.
package chaos
