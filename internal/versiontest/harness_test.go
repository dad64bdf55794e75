package versiontest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var binary struct {
	once sync.Once
	path string
	err  error
}

// pgcdcBinary builds cmd/pgcdc once per test binary (without -race: it is the program under test,
// not this package).
func pgcdcBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "pgcdc-versiontest-")
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "pgcdc")
		if out, err := exec.Command("go", "build", "-o", binary.path, "github.com/pgcdc/pgcdc/cmd/pgcdc").CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// runCommand runs `pgcdc args...` to completion with vars and returns its exit code and output.
func runCommand(t *testing.T, vars map[string]string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pgcdcBinary(t), args...)
	cmd.Env = os.Environ()
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("pgcdc %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// logBuffer collects a process's output.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// pgcdc is one `pgcdc run` process.
type pgcdc struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *logBuffer
	done chan struct{}
}

// runPgcdc starts `pgcdc run` configured by vars (PGCDC_* variables).
func runPgcdc(t *testing.T, vars map[string]string) *pgcdc {
	t.Helper()
	cmd := exec.Command(pgcdcBinary(t), "run")
	cmd.Env = os.Environ()
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &pgcdc{t: t, cmd: cmd, out: &logBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }() // owned by p: ends with the process, which Cleanup kills
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("pgcdc pid %d output (end):\n%s", cmd.Process.Pid, lastBytes(p.out.String(), 6000))
		}
	})
	return p
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// waitLog waits until the output contains substr; the process ending first fails the test.
func (p *pgcdc) waitLog(substr string, limit time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(p.out.String(), substr) {
		select {
		case <-p.done:
			p.t.Fatalf("pgcdc exited (%v) before logging %q:\n%s", p.cmd.ProcessState, substr, lastBytes(p.out.String(), 5000))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("pgcdc did not log %q within %s:\n%s", substr, limit, lastBytes(p.out.String(), 5000))
		}
	}
}

// exit waits for the process to end by itself and returns its status.
func (p *pgcdc) exit(limit time.Duration) *os.ProcessState {
	p.t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState
	case <-time.After(limit):
		p.t.Fatalf("pgcdc still running after %s:\n%s", limit, lastBytes(p.out.String(), 5000))
		return nil
	}
}

// kill sends SIGKILL and proves the process died of it.
func (p *pgcdc) kill() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	st := p.exit(30 * time.Second)
	if ws, ok := st.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		p.t.Fatalf("pgcdc did not die of SIGKILL: %v", st)
	}
}

// stop sends SIGTERM and requires a clean exit.
func (p *pgcdc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if st := p.exit(90 * time.Second); st.ExitCode() != 0 {
		p.t.Fatalf("pgcdc exited with %v on SIGTERM:\n%s", st, lastBytes(p.out.String(), 5000))
	}
}

// db is a superuser connection to one test database.
type db struct {
	t    *testing.T
	conn *pgx.Conn
}

func connect(t *testing.T, dsn string) *db {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return &db{t: t, conn: conn}
}

func (d *db) exec(sql string, args ...any) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := d.conn.Exec(ctx, sql, args...); err != nil {
		d.t.Fatalf("%s: %v", sql, err)
	}
}

// lsn runs a query returning one LSN as text (NULL or no row: 0).
func (d *db) lsn(sql string, args ...any) pglogrepl.LSN {
	d.t.Helper()
	var s *string
	err := d.conn.QueryRow(context.Background(), sql, args...).Scan(&s)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		d.t.Fatalf("%s: %v", sql, err)
	}
	if s == nil {
		return 0
	}
	l, err := pglogrepl.ParseLSN(*s)
	if err != nil {
		d.t.Fatal(err)
	}
	return l
}

// waitConfirmed waits until the slot's confirmed_flush_lsn reaches target.
func (d *db) waitConfirmed(p *pgcdc, slot string, target pglogrepl.LSN, limit time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := d.lsn(`SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, slot)
		if got >= target {
			return
		}
		if p != nil {
			select {
			case <-p.done:
				d.t.Fatalf("pgcdc exited (%v) with the slot at %s, before %s:\n%s", p.cmd.ProcessState, got, target, lastBytes(p.out.String(), 5000))
			default:
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("slot %s at %s, not at %s after %s", slot, got, target, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readAll reads every record of topic from the beginning up to its end as it is now.
func readAll(t *testing.T, brokers []string, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	var out []kafka.Message
	for _, p := range parts {
		lc, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		first, last, err := lc.ReadOffsets()
		if err != nil {
			t.Fatal(err)
		}
		for next := first; next < last; {
			if _, err := lc.Seek(next, kafka.SeekAbsolute); err != nil {
				t.Fatal(err)
			}
			_ = lc.SetReadDeadline(time.Now().Add(30 * time.Second))
			batch := lc.ReadBatch(1, 16<<20)
			before := next
			for next < last {
				m, err := batch.ReadMessage()
				if err != nil {
					break
				}
				m.Partition = p.ID
				out = append(out, m)
				next = m.Offset + 1
			}
			batch.Close()
			if next == before {
				t.Fatalf("%s partition %d: no progress at offset %d of %d", topic, p.ID, next, last)
			}
		}
		lc.Close()
	}
	return out
}
