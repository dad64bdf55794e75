package connector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var build struct {
	once sync.Once
	path string
	err  error
}

// pgcdcBinary builds cmd/pgcdc once per test binary, without -race (the memory tests measure it).
func pgcdcBinary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "pgcdc-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "pgcdc")
		cmd := exec.Command("go", "build", "-o", build.path, "../cmd/pgcdc")
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// env is one test's isolated world: its own database, slot, publication and topic prefix.
type env struct {
	t       *testing.T
	dsn     string
	brokers []string
	prefix  string
	slot    string
	pub     string
	db      *pgx.Conn
	pg      *testenv.Postgres // set when the test uses a dedicated cluster
}

func newEnv(t *testing.T, pg *testenv.Postgres, brokers []string) *env {
	t.Helper()
	testenv.Require(t)
	e := &env{t: t, pg: pg, brokers: brokers}
	if pg != nil {
		e.dsn = pg.NewDatabase(t)
	} else {
		e.dsn = testenv.NewDatabase(t)
	}
	if e.brokers == nil {
		e.brokers = testenv.SharedKafka(t)
	}
	e.prefix = testenv.UniqueName(t, "t")
	e.slot = testenv.UniqueName(t, "slot")
	e.pub = testenv.UniqueName(t, "pub")
	e.connect()
	return e
}

func (e *env) connect() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		e.t.Fatalf("connect: %v", err)
	}
	e.db = db
	e.t.Cleanup(func() { db.Close(context.Background()) })
}

func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := e.db.Exec(ctx, sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

func (e *env) queryLSN(sql string, args ...any) uint64 {
	e.t.Helper()
	var s *string
	if err := e.db.QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	if s == nil {
		return 0
	}
	return parseLSN(e.t, *s)
}

func parseLSN(t testing.TB, s string) uint64 {
	var hi, lo uint64
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		t.Fatalf("parse LSN %q: %v", s, err)
	}
	return hi<<32 | lo
}

// waitSlotReleased waits until no walsender holds the slot: the walsender of a pgcdc that stopped or
// exited may outlive its client by a moment.
func (e *env) waitSlotReleased(timeout time.Duration) {
	e.t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		var active bool
		if err := e.db.QueryRow(context.Background(), `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&active); err != nil {
			e.t.Fatal(err)
		}
		if !active {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the slot stayed active %s after pgcdc stopped", timeout)
		}
	}
}

// confirmedFlush reads the slot's confirmed_flush_lsn (0 while the slot does not exist).
func (e *env) confirmedFlush() uint64 {
	return e.queryLSN(`SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, e.slot)
}

// baseEnv is the configuration of a connector for this env, as PGCDC_ variables.
func (e *env) baseEnv() map[string]string {
	return map[string]string{
		"PGCDC_POSTGRES_DSN":                          e.dsn,
		"PGCDC_POSTGRES_SLOT":                         e.slot,
		"PGCDC_POSTGRES_PUBLICATION":                  e.pub,
		"PGCDC_POSTGRES_STATUS_INTERVAL":              "1s",
		"PGCDC_POSTGRES_CONNECT_TIMEOUT":              "20s",
		"PGCDC_POSTGRES_PUBLICATION_REFRESH_INTERVAL": "1s",
		"PGCDC_POSTGRES_SPOOL_DIR":                    filepath.Join(e.t.TempDir(), "spool"),
		"PGCDC_KAFKA_BROKERS":                         strings.Join(e.brokers, ","),
		"PGCDC_KAFKA_TOPIC_PREFIX":                    e.prefix,
		"PGCDC_KAFKA_CONNECT_TIMEOUT":                 "20s",
		"PGCDC_LOG_PROGRESS_INTERVAL":                 "2s",
		"PGCDC_METRICS_LISTEN":                        "127.0.0.1:0",
	}
}

// proc is a running pgcdc process.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs `pgcdc run` with the env's configuration plus overrides ("" deletes a variable).
func (e *env) start(overrides map[string]string) *proc {
	e.t.Helper()
	vars := e.baseEnv()
	for k, v := range overrides {
		if v == "" {
			delete(vars, k)
		} else {
			vars[k] = v
		}
	}
	env := os.Environ()
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return e.startProcess(env, "run")
}

// startProcess runs the pgcdc binary with args and environment env; the process is killed when
// the test ends, and its output logged when the test failed.
func (e *env) startProcess(env []string, args ...string) *proc {
	e.t.Helper()
	cmd := exec.Command(pgcdcBinary(e.t), args...)
	cmd.Env = env
	p := &proc{t: e.t, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	e.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if e.t.Failed() {
			e.t.Logf("pgcdc %s (pid %d) output:\n%s", args[0], cmd.Process.Pid, tail(p.out.String(), 8000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// waitLog waits until the output contains substr.
func (p *proc) waitLog(substr string, timeout time.Duration) {
	p.t.Helper()
	p.waitLogCount(substr, 1, timeout)
}

// waitLogCount waits until the output contains substr at least n times.
func (p *proc) waitLogCount(substr string, n int, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for strings.Count(p.out.String(), substr) < n {
		select {
		case <-p.done:
			p.t.Fatalf("pgcdc exited (%v) before logging %q %d times:\n%s", p.err, substr, n, tail(p.out.String(), 6000))
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("pgcdc did not log %q %d times within %s:\n%s", substr, n, timeout, tail(p.out.String(), 6000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitStreaming waits for the connector to be streaming.
func (p *proc) waitStreaming() { p.waitLog(`"message":"streaming"`, 60*time.Second) }

// wait waits for the process to exit and returns its exit code (-1 and the signal when killed).
func (p *proc) wait(timeout time.Duration) (int, syscall.Signal) {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("pgcdc did not exit within %s:\n%s", timeout, tail(p.out.String(), 6000))
	}
	var exitErr *exec.ExitError
	if errors.As(p.err, &exitErr) {
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -1, ws.Signal()
		}
		return exitErr.ExitCode(), 0
	}
	return 0, 0
}

// stop sends SIGTERM and returns the exit code.
func (p *proc) stop() int {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	code, sig := p.wait(60 * time.Second)
	if sig != 0 {
		p.t.Fatalf("pgcdc died of %v on SIGTERM", sig)
	}
	return code
}

// kill sends SIGKILL and proves the process died of it.
func (p *proc) kill() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	if _, sig := p.wait(30 * time.Second); sig != syscall.SIGKILL {
		p.t.Fatalf("pgcdc did not die of SIGKILL (signal %v)", sig)
	}
}

// vmHWM is the process's peak resident set size in bytes (while it runs).
func (p *proc) vmHWM() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		p.t.Fatalf("read VmHWM: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	p.t.Fatal("no VmHWM in /proc status")
	return 0
}

// change is a decoded change event (value with schemas enabled).
type change struct {
	Key       string // raw key bytes
	Partition int
	Offset    int64
	Tombstone bool
	Headers   map[string]string
	Op        string
	Before    map[string]any
	After     map[string]any
	Source    struct {
		Version   string `json:"version"`
		Connector string `json:"connector"`
		Name      string `json:"name"`
		TsMs      int64  `json:"ts_ms"`
		Snapshot  string `json:"snapshot"`
		DB        string `json:"db"`
		Sequence  string `json:"sequence"`
		Schema    string `json:"schema"`
		Table     string `json:"table"`
		TxID      int64  `json:"txId"`
		LSN       int64  `json:"lsn"`
	}
}

func (e *env) topic(table string) string { return e.prefix + ".public." + table }

// read consumes want records of a table's topic and decodes them.
func (e *env) read(table string, want int, timeout time.Duration) []change {
	e.t.Helper()
	// A table that joined the capture while pgcdc runs is in the publication a moment before its
	// topic exists (pgcdc creates the topic after adding the table): wait for the topic first.
	deadline := time.Now().Add(timeout)
	for testenv.TopicRecords(context.Background(), e.brokers, e.topic(table)) < 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	msgs, err := testenv.ReadTopic(context.Background(), e.brokers, e.topic(table), want, time.Until(deadline))
	if err != nil {
		e.t.Fatalf("read %s: %v", e.topic(table), err)
	}
	return decodeChanges(e.t, msgs)
}

// readExactly consumes a topic and checks that no more than want records arrive within settle.
func (e *env) readExactly(table string, want int, timeout, settle time.Duration) []change {
	e.t.Helper()
	got := e.read(table, want, timeout)
	more, _ := testenv.ReadTopic(context.Background(), e.brokers, e.topic(table), want+1, settle)
	if len(more) > want {
		e.t.Fatalf("%s: %d records, want exactly %d", e.topic(table), len(more), want)
	}
	return got
}

func decodeChanges(t testing.TB, msgs []kafka.Message) []change {
	t.Helper()
	out := make([]change, 0, len(msgs))
	for _, m := range msgs {
		c := change{Key: string(m.Key), Partition: m.Partition, Offset: m.Offset, Headers: map[string]string{}}
		for _, h := range m.Headers {
			c.Headers[h.Key] = string(h.Value)
		}
		if m.Value == nil {
			c.Tombstone = true
			out = append(out, c)
			continue
		}
		var v struct {
			Payload struct {
				Op     string          `json:"op"`
				Before map[string]any  `json:"before"`
				After  map[string]any  `json:"after"`
				Source json.RawMessage `json:"source"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(m.Value, &v); err != nil {
			t.Fatalf("record at offset %d is not JSON: %v\n%s", m.Offset, err, m.Value)
		}
		c.Op, c.Before, c.After = v.Payload.Op, v.Payload.Before, v.Payload.After
		if err := json.Unmarshal(v.Payload.Source, &c.Source); err != nil {
			t.Fatalf("source block at offset %d: %v", m.Offset, err)
		}
		out = append(out, c)
	}
	return out
}

// keyID extracts the "id" field of a key with schemas.
func keyID(t testing.TB, key string) int64 {
	var k struct {
		Payload map[string]any `json:"payload"`
	}
	if err := json.Unmarshal([]byte(key), &k); err != nil {
		t.Fatalf("key %q: %v", key, err)
	}
	return int64(k.Payload["id"].(float64))
}

// commitEnds maps the xid of every transaction committed since from to its commit record's end
// LSN, read from the WAL with pg_walinspect.
func (e *env) commitEnds(from uint64) map[int64]uint64 {
	e.t.Helper()
	e.exec(`CREATE EXTENSION IF NOT EXISTS pg_walinspect`)
	rows, err := e.db.Query(context.Background(), `SELECT xid::text::int8, end_lsn::text FROM pg_get_wal_records_info($1::pg_lsn, pg_current_wal_flush_lsn())
		WHERE resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%'`, fmtLSN(from))
	if err != nil {
		e.t.Fatalf("read commit records: %v", err)
	}
	defer rows.Close()
	out := map[int64]uint64{}
	for rows.Next() {
		var xid int64
		var end string
		if err := rows.Scan(&xid, &end); err != nil {
			e.t.Fatal(err)
		}
		out[xid] = parseLSN(e.t, end)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// commitRecord returns the start and end LSN of transaction xid's commit record.
func (e *env) commitRecord(xid int64, from uint64) (start, end uint64) {
	e.t.Helper()
	e.exec(`CREATE EXTENSION IF NOT EXISTS pg_walinspect`)
	var s, en string
	err := e.db.QueryRow(context.Background(), `SELECT start_lsn::text, end_lsn::text FROM pg_get_wal_records_info($1::pg_lsn, pg_current_wal_flush_lsn())
		WHERE resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%' AND xid::text::int8 = $2`, fmtLSN(from), xid).Scan(&s, &en)
	if err != nil {
		e.t.Fatalf("commit record of xid %d: %v", xid, err)
	}
	return parseLSN(e.t, s), parseLSN(e.t, en)
}

func fmtLSN(l uint64) string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }

// scanTopic reads every record of a topic from the beginning until want records were seen or
// timeout passes, calling fn for each without keeping them; it returns the count.
func (e *env) scanTopic(table string, want int, timeout time.Duration, fn func(kafka.Message)) int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", e.brokers[0])
	if err != nil {
		e.t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(e.topic(table))
	conn.Close()
	if err != nil {
		e.t.Fatal(err)
	}
	seen := 0
	next := make([]int64, len(parts))
	for seen < want && ctx.Err() == nil {
		progressed := false
		for i, p := range parts {
			lc, err := kafka.DialLeader(ctx, "tcp", e.brokers[0], e.topic(table), p.ID)
			if err != nil {
				continue
			}
			last, err := lc.ReadLastOffset()
			if err != nil || last <= next[i] {
				lc.Close()
				continue
			}
			if _, err := lc.Seek(next[i], kafka.SeekAbsolute); err != nil {
				lc.Close()
				continue
			}
			deadline, _ := ctx.Deadline()
			_ = lc.SetReadDeadline(deadline)
			batch := lc.ReadBatch(1, 16<<20)
			for next[i] < last {
				m, err := batch.ReadMessage()
				if err != nil {
					break
				}
				m.Partition = p.ID
				fn(m)
				seen++
				progressed = true
				next[i] = m.Offset + 1
			}
			batch.Close()
			lc.Close()
		}
		if !progressed {
			time.Sleep(50 * time.Millisecond)
		}
	}
	return seen
}

// slotStats reads pg_stat_replication_slots for the env's slot.
func (e *env) slotStats() (spillTxns, streamTxns int64) {
	e.t.Helper()
	err := e.db.QueryRow(context.Background(), `SELECT coalesce(sum(spill_txns),0)::int8, coalesce(sum(stream_txns),0)::int8 FROM pg_stat_replication_slots WHERE slot_name = $1`, e.slot).Scan(&spillTxns, &streamTxns)
	if err != nil {
		e.t.Fatal(err)
	}
	return
}

// withOptions appends libpq startup options (e.g. "-c logical_decoding_work_mem=64kB") to a URL DSN.
func withOptions(dsn, options string) string {
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "options=" + strings.ReplaceAll(url.QueryEscape(options), "+", "%20")
}
