package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// servers are the PostgreSQL and Kafka the benchmark runs against.
type servers struct {
	adminDSN  string // superuser URL, database "postgres"
	brokers   []string
	brokerPID int  // 0 when the broker is not ours (its CPU is then not measured)
	pgLocal   bool // the walsenders are local processes whose /proc we may read
	recvBin   string
	closers   []func()
}

func (s *servers) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// startServers uses the given servers or starts throwaway ones through internal/testenv.
func startServers(ctx context.Context, o *options) (*servers, error) {
	s := &servers{brokerPID: o.kafkaPID}
	var (
		wg         sync.WaitGroup
		pg         *testenv.Postgres
		kf         *testenv.Kafka
		pgErr, kEr error
	)
	if o.pgDSN == "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pg, pgErr = testenv.StartPostgres(ctx, testenv.PostgresOptions{BinDir: o.pgBinDir})
		}()
	}
	if o.brokers == "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kf, kEr = testenv.StartKafka(ctx, testenv.KafkaOptions{HeapMB: o.kafkaHeapMB, JVMOptions: strings.Fields(o.kafkaJVM)})
		}()
	}
	wg.Wait()
	if pg != nil {
		s.closers = append(s.closers, pg.Close)
		s.adminDSN = pg.DSN("postgres")
		s.pgLocal = true
		logf("PostgreSQL on 127.0.0.1:%d (pid %d)", pg.Port, pg.PID())
	} else {
		s.adminDSN = o.pgDSN
		s.pgLocal = o.pgLocal
	}
	if kf != nil {
		s.closers = append(s.closers, kf.Close)
		s.brokers = []string{kf.Addr()}
		s.brokerPID = kf.PID()
		logf("Kafka on %s (pid %d)", kf.Addr(), kf.PID())
	} else {
		s.brokers = strings.Split(o.brokers, ",")
	}
	if err := errors.Join(pgErr, kEr); err != nil {
		s.close()
		return nil, err
	}
	bin, err := findRecvlogical(o.pgBinDir)
	if err != nil {
		s.close()
		return nil, err
	}
	s.recvBin = bin
	return s, nil
}

// findRecvlogical prefers the newest /usr/lib/postgresql/*/bin (the server testenv starts comes
// from there or from PATH), then PATH.
func findRecvlogical(dir string) (string, error) {
	if dir != "" {
		return filepath.Join(dir, "pg_recvlogical"), nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_recvlogical")
	sort.Slice(matches, func(i, j int) bool { return majorOf(matches[i]) > majorOf(matches[j]) })
	if p, err := exec.LookPath("initdb"); err == nil {
		if c := filepath.Join(filepath.Dir(p), "pg_recvlogical"); fileExists(c) {
			return c, nil
		}
	}
	if len(matches) > 0 {
		return matches[0], nil
	}
	if p, err := exec.LookPath("pg_recvlogical"); err == nil {
		return p, nil
	}
	return "", errors.New("pg_recvlogical not found (install the PostgreSQL client/server package or pass -pg-bin)")
}

func majorOf(p string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
	return v
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// dsnFor is the admin URL with its database replaced.
func dsnFor(admin, db string) (string, error) {
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("-pg-dsn must be a postgres:// URL: %q", redact(admin))
	}
	u.Path = "/" + db
	return u.String(), nil
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return u.Redacted()
}

func connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return pgx.Connect(cctx, dsn)
}

func parseLSN(s string) (uint64, error) {
	l, err := pglogrepl.ParseLSN(s)
	return uint64(l), err
}

func fmtLSN(l uint64) string { return pglogrepl.LSN(l).String() }

// slotState is one row of pg_replication_slots joined with the walsender serving it.
type slotState struct {
	confirmed uint64
	sent      uint64 // walsender's sent_lsn; 0 when the slot is inactive
	pid       int    // walsender pid; 0 when inactive
}

func readSlot(ctx context.Context, db *pgx.Conn, slot string) (slotState, error) {
	var st slotState
	var conf, sent *string
	var pid *int32
	err := db.QueryRow(ctx, `SELECT s.confirmed_flush_lsn::text, r.sent_lsn::text, s.active_pid
		FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
		WHERE s.slot_name = $1`, slot).Scan(&conf, &sent, &pid)
	if err != nil {
		return st, fmt.Errorf("read slot %s: %w", slot, err)
	}
	if conf != nil {
		st.confirmed, _ = parseLSN(*conf)
	}
	if sent != nil {
		st.sent, _ = parseLSN(*sent)
	}
	if pid != nil {
		st.pid = int(*pid)
	}
	return st, nil
}

func createSlot(ctx context.Context, db *pgx.Conn, slot string) error {
	_, err := db.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, slot)
	if err != nil {
		return fmt.Errorf("create slot %s: %w", slot, err)
	}
	return nil
}

// dropSlot drops a slot if it exists, waiting (bounded) for its walsender to go away.
func dropSlot(ctx context.Context, db *pgx.Conn, slot string) {
	for i := 0; i < 50; i++ {
		_, err := db.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
		if err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	logf("warning: could not drop slot %s", slot)
}

// topicStats counts a topic's records (sum of the partitions' end offsets; the topic is new) and
// averages the key+value size of up to 200 of its last records.
func topicStats(ctx context.Context, brokers []string, topic string) (count int64, avgBytes float64, err error) {
	conn, err := kafka.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return 0, 0, err
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		return 0, 0, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	var sampled, bytes int64
	for _, p := range parts {
		lc, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, p.ID)
		if err != nil {
			return 0, 0, err
		}
		last, err := lc.ReadLastOffset()
		if err != nil {
			lc.Close()
			return 0, 0, err
		}
		count += last
		if sampled == 0 && last > 0 {
			from := last - 200
			if from < 0 {
				from = 0
			}
			if _, err := lc.Seek(from, kafka.SeekAbsolute); err == nil {
				_ = lc.SetReadDeadline(time.Now().Add(10 * time.Second))
				batch := lc.ReadBatch(1, 64<<20)
				for i := 0; i < 200; i++ {
					m, err := batch.ReadMessage()
					if err != nil {
						break
					}
					sampled++
					bytes += int64(len(m.Key) + len(m.Value))
				}
				batch.Close()
			}
		}
		lc.Close()
	}
	if sampled > 0 {
		avgBytes = float64(bytes) / float64(sampled)
	}
	return count, avgBytes, nil
}

func deleteTopic(ctx context.Context, brokers []string, topic string) {
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 30 * time.Second}
	if _, err := cl.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}}); err != nil {
		logf("warning: delete topic %s: %v", topic, err)
	}
}

// deleteTopics deletes topics, a hundred a request; one that does not exist is no error.
func deleteTopics(ctx context.Context, brokers []string, topics []string) {
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 60 * time.Second}
	for i := 0; i < len(topics); i += 100 {
		if _, err := cl.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: topics[i:min(i+100, len(topics))]}); err != nil {
			logf("warning: delete topics %s...: %v", topics[i], err)
		}
	}
}

// waitTopic waits (bounded) until a topic has a leader for partition 0.
func waitTopic(ctx context.Context, brokers []string, topic string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, 0)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("topic %s not available after %s: %v", topic, limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
