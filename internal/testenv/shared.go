package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables that point the tests at existing servers instead of starting their own.
const (
	// EnvPostgresDSN is a superuser connection URL (postgres://user:pass@host:port/db) to a server
	// with wal_level=logical; tests create their own databases, slots and publications on it.
	EnvPostgresDSN = "PGCDC_TEST_PG_DSN"
	// EnvKafkaBrokers is a comma-separated list of host:port of an existing Kafka 4.x cluster on which
	// tests may create topics.
	EnvKafkaBrokers = "PGCDC_TEST_KAFKA_BROKERS"
)

// The servers this test binary started itself because the environment named none; Main stops them.
var shared struct {
	mu    sync.Mutex
	pg    *Postgres
	pgErr error
	kafka *Kafka
	kErr  error
	// cluster is the three-broker cluster of SharedKafkaCluster.
	cluster    *KafkaCluster
	clusterErr error
}

// Main runs the package's tests and stops any server the package started. Use it as TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	shared.mu.Lock()
	if shared.pg != nil {
		shared.pg.Close()
	}
	if shared.kafka != nil {
		shared.kafka.Close()
	}
	if shared.cluster != nil {
		shared.cluster.Close()
	}
	shared.mu.Unlock()
	os.Exit(code)
}

// Require marks t as an integration test: skipped under -short, otherwise run (and failed, never
// skipped, when its servers cannot be had).
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped in -short mode (make test-unit)")
	}
}

// PostgresServer is the shared PostgreSQL of the test run.
type PostgresServer struct {
	base *url.URL // superuser URL; its path names a database
}

// DSN is a superuser connection URL to database db.
func (s *PostgresServer) DSN(db string) string {
	u := *s.base
	u.Path = "/" + db
	return u.String()
}

// SharedPostgres returns the test run's PostgreSQL: the one named by PGCDC_TEST_PG_DSN, or one this
// test binary starts on first use (stopped by Main).
func SharedPostgres(t testing.TB) *PostgresServer {
	t.Helper()
	Require(t)
	if dsn := os.Getenv(EnvPostgresDSN); dsn != "" {
		u, err := url.Parse(dsn)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			t.Fatalf("%s must be a postgres:// URL, got %q", EnvPostgresDSN, redact(dsn))
		}
		return &PostgresServer{base: u}
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.pg == nil && shared.pgErr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		shared.pg, shared.pgErr = StartPostgres(ctx, PostgresOptions{})
		cancel()
	}
	if shared.pgErr != nil {
		t.Fatalf("start PostgreSQL for the tests (or set %s): %v", EnvPostgresDSN, shared.pgErr)
	}
	u, _ := url.Parse(shared.pg.DSN("postgres"))
	return &PostgresServer{base: u}
}

// SharedKafka returns the bootstrap addresses of the test run's Kafka: the brokers named by
// PGCDC_TEST_KAFKA_BROKERS, or a broker this test binary starts on first use (stopped by Main).
func SharedKafka(t testing.TB) []string {
	t.Helper()
	Require(t)
	if brokers := os.Getenv(EnvKafkaBrokers); brokers != "" {
		return strings.Split(brokers, ",")
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.kafka == nil && shared.kErr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		shared.kafka, shared.kErr = StartKafka(ctx, KafkaOptions{})
		cancel()
	}
	if shared.kErr != nil {
		t.Fatalf("start Kafka for the tests (or set %s): %v", EnvKafkaBrokers, shared.kErr)
	}
	return []string{shared.kafka.Addr()}
}

// SharedKafkaCluster returns the test binary's three-broker cluster (StartKafkaCluster), started on
// first use and stopped by Main. Its tests may stop, kill and freeze brokers, one test at a time, and
// must leave it healthy (KafkaCluster.WaitHealthy) for the next. There is no variable naming an
// existing cluster: the tests need to control the broker processes.
func SharedKafkaCluster(t testing.TB) *KafkaCluster {
	t.Helper()
	Require(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.cluster == nil && shared.clusterErr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		shared.cluster, shared.clusterErr = StartKafkaCluster(ctx, KafkaClusterOptions{})
		cancel()
	}
	if shared.clusterErr != nil {
		t.Fatalf("start the Kafka cluster for the tests: %v", shared.clusterErr)
	}
	return shared.cluster
}

// EnvLong, set to 1, selects the long forms of the tests that have one (make test-long): more faults,
// longer runs. Without it those tests run their short forms (make test).
const EnvLong = "PGCDC_TEST_LONG"

// Long reports whether the long forms of the tests were asked for (PGCDC_TEST_LONG=1).
func Long() bool { return os.Getenv(EnvLong) == "1" }

// RequireLong marks a test that only has a long form: skipped unless PGCDC_TEST_LONG=1 (make
// test-long), and under -short.
func RequireLong(t testing.TB) {
	t.Helper()
	Require(t)
	if !Long() {
		t.Skip("long test: runs in make test-long (" + EnvLong + "=1)")
	}
}

var nonName = regexp.MustCompile(`[^a-z0-9_]+`)

// UniqueName returns a lower-case identifier unique to this call, built from prefix and the test's
// name, valid as a database, slot, publication or topic name (at most 63 bytes).
func UniqueName(t testing.TB, prefix string) string {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := nonName.ReplaceAllString(strings.ToLower(t.Name()), "_")
	suffix := "_" + hex.EncodeToString(rnd[:])
	max := 63 - len(prefix) - 1 - len(suffix)
	if len(name) > max {
		name = name[len(name)-max:]
	}
	return strings.Trim(prefix+"_"+name, "_") + suffix
}

// NewDatabase creates a database of its own for t on the shared PostgreSQL and returns its superuser
// DSN. At cleanup it drops the database and every replication slot on it.
func NewDatabase(t testing.TB) string {
	t.Helper()
	srv := SharedPostgres(t)
	return srv.newDatabase(t)
}

// NewDatabase creates a database of its own for t on this dedicated cluster (see NewDatabase).
func (pg *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	u, _ := url.Parse(pg.DSN("postgres"))
	return (&PostgresServer{base: u}).newDatabase(t)
}

func (s *PostgresServer) newDatabase(t testing.TB) string {
	t.Helper()
	name := UniqueName(t, "db")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatalf("connect to the test PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() { s.dropDatabase(t, name) })
	return s.DSN(name)
}

func (s *PostgresServer) dropDatabase(t testing.TB, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Logf("cleanup: connect to drop database %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	// Slots of the database (logical slots are per database) would keep WAL forever: drop them,
	// ending the walsenders that hold them first.
	for i := 0; i < 50; i++ {
		_, _ = conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`, name)
		_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active`, name)
		var left int
		if err == nil {
			err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE database = $1`, name).Scan(&left)
		}
		if err == nil && left == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{name}.Sanitize())); err != nil {
		t.Logf("cleanup: drop database %s: %v", name, err)
	}
}

// redact hides the password of a connection URL.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return "(unparseable DSN)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
