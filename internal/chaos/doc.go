// Package chaos is pgcdc's fault-injection harness: it proves, under faults produced for real on this
// machine, that nothing committed is lost, that the last event of every key equals the row's final
// state, and that duplicates stay within the bound docs/faults.md states for each kind of fault.
//
// Run starts a dedicated PostgreSQL and Kafka (internal/testenv, because the harness restarts them),
// builds the pgcdc binary (without -race) and runs it as a child process configured by PGCDC_*
// variables. Then, for Options.Duration:
//
//   - Writers commit transactions of 1 to 50,000 rows of inserts, updates and deletes over a bounded
//     key set in three tables (int, bigint and text keys; REPLICA IDENTITY DEFAULT and FULL), and roll
//     a few back. Every transaction also inserts its row in chaos_ledger (its id, its xid), in the same
//     transaction. Each writer owns a disjoint share of the keys and keeps a model of which exist, so it
//     knows every change it made. When a commit fails (a PostgreSQL restart), the writer reconnects,
//     waits until the old backend is gone and reads the ledger: the row is there exactly when the
//     transaction committed.
//   - A fault loop injects, in a shuffled rotation, at random moments: kill -9 of pgcdc
//     (connector-kill), pg_terminate_backend of its walsender (walsender-terminate), a clean broker
//     restart (broker-restart), a SIGKILL of the broker (broker-kill), a broker frozen by SIGSTOP for
//     3-15 s (broker-pause: a slow broker, past pgcdc's write timeout), PostgreSQL restarts in fast and
//     immediate mode (pg-restart-fast, pg-restart-immediate). A fault counts only with its evidence:
//     the killed pgcdc's wait status says SIGKILL and a new pid runs; the broker runs under a new pid
//     (or /proc showed it stopped); pg_postmaster_start_time() changed; the terminated walsender is
//     gone from pg_stat_activity and another holds the slot. Each fault also records its duplicate window: the
//     slot's confirmed_flush_lsn before it (floor; for an immediate restart the lower of that and the
//     slot's position after the restart) and the server's WAL position after it (ceiling).
//   - A WAL scanner (pg_walinspect) records the end LSN of every commit as it happens, so that each
//     duplicated transaction can be placed against the fault windows.
//
// At the end the writers stop, pgcdc catches up (the slot passes the last commit), gets SIGTERM and
// must exit 0, and every topic is read from the beginning. The verification: every committed change
// is present (identified by table, key, ledger transaction and operation); nothing else is (rolled
// back transactions never appear); every delete is followed by its tombstone; for every key the last
// event equals the row in PostgreSQL; every duplicate lies in the window of a fault that may re-send
// it (a transaction copied n extra times needs n such faults). Result.Write prints the faults by
// kind, events written and consumed, lost (must be 0) and duplicates (per kind, against the window).
//
//	res, err := chaos.Run(ctx, chaos.Options{Duration: 20 * time.Minute, Logf: log.Printf})
//	res.Write(os.Stdout)
//	if err == nil { err = res.Err() }
//
// TestShortChaos runs about five minutes of it inside `make test`; `make chaos DURATION=20m` runs
// internal/cmd/chaos for as long as asked.
package chaos
