package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

const (
	database    = "chaos"
	slotName    = "chaos_slot"
	publication = "chaos_pub"
)

// BuildPgcdc builds cmd/pgcdc without -race into dir and returns the binary's path.
func BuildPgcdc(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "pgcdc")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/pgcdc/pgcdc/cmd/pgcdc")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build pgcdc: %v\n%s", err, out)
	}
	return bin, nil
}

// servers are the dedicated PostgreSQL and the Kafka cluster of a run, and an admin connection that
// reconnects after PostgreSQL restarts.
type servers struct {
	pg         *testenv.Postgres
	kafka      *testenv.KafkaCluster
	ownCluster bool   // started by the run: stopped at its end
	dsn        string // superuser URL of the chaos database
	logf       func(string, ...any)

	mu sync.Mutex
	db *pgx.Conn
}

// startServers starts PostgreSQL and, unless cluster is given, a three-broker Kafka cluster.
func startServers(ctx context.Context, cluster *testenv.KafkaCluster, logf func(string, ...any)) (*servers, error) {
	s := &servers{logf: logf, kafka: cluster, ownCluster: cluster == nil}
	var wg sync.WaitGroup
	var pgErr, kErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.pg, pgErr = testenv.StartPostgres(ctx, testenv.PostgresOptions{Settings: map[string]string{
			"max_wal_size": "'2GB'",
		}})
	}()
	if s.ownCluster {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.kafka, kErr = testenv.StartKafkaCluster(ctx, testenv.KafkaClusterOptions{})
		}()
	} else {
		kErr = cluster.WaitHealthy(ctx, 3*time.Minute)
	}
	wg.Wait()
	if err := errors.Join(pgErr, kErr); err != nil {
		s.close("")
		return nil, err
	}
	u, _ := url.Parse(s.pg.DSN("postgres"))
	u.Path = "/" + database
	s.dsn = u.String()
	var pids []string
	for _, b := range s.kafka.Brokers {
		pids = append(pids, fmt.Sprintf("broker %d on %s pid %d", b.NodeID, b.Addr(), b.PID()))
	}
	logf("chaos: PostgreSQL on 127.0.0.1:%d (postmaster pid %d); Kafka controller pid %d, %s", s.pg.Port, s.pg.PID(), s.kafka.Controller.PID(), strings.Join(pids, ", "))
	return s, nil
}

// close stops PostgreSQL and the cluster the run started; on a cluster it was given, it deletes the
// run's topics (those starting with prefix) instead.
func (s *servers) close(prefix string) {
	s.mu.Lock()
	if s.db != nil {
		s.db.Close(context.Background())
		s.db = nil
	}
	s.mu.Unlock()
	if s.pg != nil {
		s.pg.Close()
	}
	switch {
	case s.kafka == nil:
	case s.ownCluster:
		s.kafka.Close()
	case prefix != "":
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if parts, err := s.kafka.Partitions(ctx); err == nil {
			var topics []string
			for _, p := range parts {
				if strings.HasPrefix(p.Topic, prefix+".") && !slices.Contains(topics, p.Topic) {
					topics = append(topics, p.Topic)
				}
			}
			if err := s.kafka.DeleteTopics(ctx, topics...); err != nil {
				s.logf("chaos: delete the run's topics: %v", err)
			}
		}
	}
}

// saveLogs copies the ends of the server logs into dir (for a failed run).
func (s *servers) saveLogs(dir string) {
	if s.pg != nil {
		_ = os.WriteFile(filepath.Join(dir, "postgres.log.tail"), []byte(s.pg.Log()), 0o644)
	}
	if s.kafka != nil {
		for _, n := range append([]*testenv.Kafka{s.kafka.Controller}, s.kafka.Brokers...) {
			_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("kafka-%d.log.tail", n.NodeID)), []byte(n.Log()), 0o644)
		}
	}
}

// setup creates the database, the tables and the extension the run needs.
func (s *servers) setup(ctx context.Context) error {
	admin, err := pgx.Connect(ctx, s.pg.DSN("postgres"))
	if err != nil {
		return err
	}
	_, err = admin.Exec(ctx, "CREATE DATABASE "+database)
	admin.Close(ctx)
	if err != nil {
		return err
	}
	return s.do(ctx, func(ctx context.Context, db *pgx.Conn) error {
		for _, t := range tables {
			keyType := "int"
			if t.text {
				keyType = "text"
			} else if t.name == "c_b" {
				keyType = "bigint"
			}
			sql := fmt.Sprintf(`CREATE TABLE %s (%s %s PRIMARY KEY, txn bigint NOT NULL, n int NOT NULL, pad text NOT NULL);
				ALTER TABLE %s REPLICA IDENTITY %s`, t.name, t.keyCol, keyType, t.name, t.identity)
			if _, err := db.Exec(ctx, sql); err != nil {
				return err
			}
		}
		_, err := db.Exec(ctx, `CREATE TABLE chaos_ledger (id bigint PRIMARY KEY, xid bigint NOT NULL, writer int NOT NULL, rows int NOT NULL);
			CREATE TABLE chaos_marker (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());
			CREATE EXTENSION pg_walinspect`)
		return err
	})
}

// do runs fn on the admin connection of the chaos database, reconnecting (for up to 3 minutes) while
// PostgreSQL restarts. fn may be called more than once.
func (s *servers) do(ctx context.Context, fn func(context.Context, *pgx.Conn) error) error {
	deadline := time.Now().Add(3 * time.Minute)
	var last error
	for attempt := 0; ; attempt++ {
		s.mu.Lock()
		if s.db == nil || s.db.IsClosed() {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			db, err := pgx.Connect(cctx, s.dsn)
			cancel()
			if err == nil {
				s.db = db
			} else {
				last = err
			}
		}
		db := s.db
		if db != nil {
			qctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			last = fn(qctx, db)
			cancel()
			if last == nil {
				s.mu.Unlock()
				return nil
			}
			if !db.IsClosed() && !isConnErr(last) {
				s.mu.Unlock()
				return last // an answer, not a broken connection
			}
			db.Close(context.Background())
			s.db = nil
		}
		s.mu.Unlock()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("admin connection: PostgreSQL not reachable for 3m: %w", last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *servers) lsn(ctx context.Context, sql string, args ...any) (uint64, error) {
	var v *string
	err := s.do(ctx, func(ctx context.Context, db *pgx.Conn) error { return db.QueryRow(ctx, sql, args...).Scan(&v) })
	if err != nil || v == nil {
		return 0, err
	}
	l, err := pglogrepl.ParseLSN(*v)
	return uint64(l), err
}

// confirmedFlush is the slot's confirmed_flush_lsn (0 when the slot does not exist yet).
func (s *servers) confirmedFlush(ctx context.Context) (uint64, error) {
	return s.lsn(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, slotName)
}

func (s *servers) walInsert(ctx context.Context) (uint64, error) {
	return s.lsn(ctx, `SELECT pg_current_wal_insert_lsn()::text`)
}

func (s *servers) walFlush(ctx context.Context) (uint64, error) {
	return s.lsn(ctx, `SELECT pg_current_wal_flush_lsn()::text`)
}

// activePID is the pid of the walsender holding the slot (0 when none).
func (s *servers) activePID(ctx context.Context) (int32, error) {
	var pid int32
	err := s.do(ctx, func(ctx context.Context, db *pgx.Conn) error {
		pid = 0
		err := db.QueryRow(ctx, `SELECT coalesce(active_pid, 0) FROM pg_replication_slots WHERE slot_name = $1`, slotName).Scan(&pid)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	return pid, err
}

func (s *servers) postmasterStart(ctx context.Context) (time.Time, error) {
	var t time.Time
	err := s.do(ctx, func(ctx context.Context, db *pgx.Conn) error {
		return db.QueryRow(ctx, `SELECT pg_postmaster_start_time()`).Scan(&t)
	})
	return t, err
}

// backendGone reports whether no backend with pid exists.
func (s *servers) backendGone(ctx context.Context, pid uint32) (bool, error) {
	var n int
	err := s.do(ctx, func(ctx context.Context, db *pgx.Conn) error {
		return db.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, int64(pid)).Scan(&n)
	})
	return n == 0, err
}

// waitActive waits until a walsender holds the slot.
func (s *servers) waitActive(ctx context.Context, c *connector, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if err := c.unexpected(); err != nil {
			return err
		}
		pid, err := s.activePID(ctx)
		if err == nil && pid != 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no walsender holds slot %s after %s (last error: %v)", slotName, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// isConnErr reports errors that mean the connection is gone (PostgreSQL restarting).
func isConnErr(err error) bool {
	if err == nil {
		return false
	}
	var pgErr interface{ SQLState() string }
	if errors.As(err, &pgErr) {
		switch pgErr.SQLState()[:2] {
		case "08", "57": // connection exception, operator intervention (shutdown, crash)
			return true
		}
		return false
	}
	return true // network errors, EOF, timeouts
}

// commitMarker commits a row into chaos_marker (captured, but not part of the verification) and
// returns the end LSN of its commit record: the slot reaches it only once pgcdc has confirmed the
// marker's event, which needs Kafka's acknowledgement.
func (s *servers) commitMarker(ctx context.Context) (uint64, error) {
	var end uint64
	err := s.do(ctx, func(ctx context.Context, db *pgx.Conn) error {
		var from, to *string
		var xid int64
		if err := db.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&from); err != nil {
			return err
		}
		tx, err := db.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit it does nothing
		if err := tx.QueryRow(ctx, `INSERT INTO chaos_marker DEFAULT VALUES RETURNING pg_current_xact_id()::text::bigint`).Scan(&xid); err != nil {
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		err = db.QueryRow(ctx, `SELECT end_lsn::text FROM pg_get_wal_records_info($1::pg_lsn, pg_current_wal_flush_lsn())
			WHERE resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%' AND xid::text::int8 = $2`, *from, xid).Scan(&to)
		if err != nil {
			return fmt.Errorf("commit record of the marker (xid %d): %w", xid, err)
		}
		end, err = s.lsnOf(to)
		return err
	})
	return end, err
}
