package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
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
	topicPrefix = "chaos"
)

// buildPgcdc builds cmd/pgcdc without -race into dir.
func buildPgcdc(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "pgcdc")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/pgcdc/pgcdc/cmd/pgcdc")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build pgcdc: %v\n%s", err, out)
	}
	return bin, nil
}

// servers are the dedicated PostgreSQL and Kafka of a run, and an admin connection that reconnects
// after PostgreSQL restarts.
type servers struct {
	pg    *testenv.Postgres
	kafka *testenv.Kafka
	dsn   string // superuser URL of the chaos database
	logf  func(string, ...any)

	mu sync.Mutex
	db *pgx.Conn
}

func startServers(ctx context.Context, workDir string, logf func(string, ...any)) (*servers, error) {
	s := &servers{logf: logf}
	var wg sync.WaitGroup
	var pgErr, kErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.pg, pgErr = testenv.StartPostgres(ctx, testenv.PostgresOptions{Settings: map[string]string{
			"max_wal_size": "'2GB'",
		}})
	}()
	go func() {
		defer wg.Done()
		s.kafka, kErr = testenv.StartKafka(ctx, testenv.KafkaOptions{})
	}()
	wg.Wait()
	if err := errors.Join(pgErr, kErr); err != nil {
		s.close()
		return nil, err
	}
	u, _ := url.Parse(s.pg.DSN("postgres"))
	u.Path = "/" + database
	s.dsn = u.String()
	logf("chaos: PostgreSQL on 127.0.0.1:%d (postmaster pid %d), Kafka on %s (pid %d)", s.pg.Port, s.pg.PID(), s.kafka.Addr(), s.kafka.PID())
	return s, nil
}

// close stops the servers, keeping their logs in the work dir when asked.
func (s *servers) close() {
	s.mu.Lock()
	if s.db != nil {
		s.db.Close(context.Background())
		s.db = nil
	}
	s.mu.Unlock()
	if s.pg != nil {
		s.pg.Close()
	}
	if s.kafka != nil {
		s.kafka.Close()
	}
}

// saveLogs copies the ends of the server logs into dir (for a failed run).
func (s *servers) saveLogs(dir string) {
	if s.pg != nil {
		_ = os.WriteFile(filepath.Join(dir, "postgres.log.tail"), []byte(s.pg.Log()), 0o644)
	}
	if s.kafka != nil {
		_ = os.WriteFile(filepath.Join(dir, "kafka.log.tail"), []byte(s.kafka.Log()), 0o644)
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
