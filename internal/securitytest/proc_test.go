package securitytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// binary is cmd/pgcdc, built once per test binary (in the background while the servers start).
var binary struct {
	once sync.Once
	done chan struct{}
	path string
	err  error
}

func buildPgcdc() {
	binary.once.Do(func() {
		binary.done = make(chan struct{})
		go func() {
			defer close(binary.done)
			dir, err := os.MkdirTemp("", "pgcdc-bin-")
			if err != nil {
				binary.err = err
				return
			}
			binary.path = filepath.Join(dir, "pgcdc")
			out, err := exec.Command("go", "build", "-o", binary.path, "../../cmd/pgcdc").CombinedOutput()
			if err != nil {
				binary.err = fmt.Errorf("go build: %v\n%s", err, out)
			}
		}()
	})
}

func pgcdcPath(t testing.TB) string {
	t.Helper()
	buildPgcdc()
	<-binary.done
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// outputs collects everything pgcdc wrote in this test binary, to look for secrets in the end.
type outputs struct {
	mu    sync.Mutex
	items []output
}

type output struct{ label, text string }

func (o *outputs) add(label, text string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.items = append(o.items, output{label, text})
}

func (o *outputs) all() []output {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]output(nil), o.items...)
}

var collected outputs

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

// proc is a pgcdc process.
type proc struct {
	t     *testing.T
	label string
	cmd   *exec.Cmd
	out   *syncBuffer
	done  chan struct{}
	err   error
}

// envList renders PGCDC_* variables for a child: the test's environment without PGCDC_ and AWS_
// variables, plus vars.
func envList(vars map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PGCDC_") || strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "PGSSL") {
			continue
		}
		out = append(out, kv)
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+vars[k])
	}
	return out
}

// start runs `pgcdc args...` with vars; its output is collected when the test ends.
func start(t *testing.T, label string, vars map[string]string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(pgcdcPath(t), args...)
	cmd.Env = envList(vars)
	p := &proc{t: t, label: label, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		collected.add(label, p.out.String())
		if t.Failed() {
			t.Logf("pgcdc %s (%s) output:\n%s", strings.Join(args, " "), label, tail(p.out.String(), 6000))
		}
	})
	return p
}

// runCmd runs a command to its end (bounded) and returns its exit code and output.
func runCmd(t *testing.T, label string, vars map[string]string, args ...string) (int, string) {
	t.Helper()
	p := start(t, label, vars, args...)
	code := p.wait(2 * time.Minute)
	return code, p.out.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func (p *proc) waitLog(substr string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.out.String(), substr) {
		select {
		case <-p.done:
			p.t.Fatalf("pgcdc (%s) exited (%v) before logging %q:\n%s", p.label, p.err, substr, tail(p.out.String(), 6000))
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("pgcdc (%s) did not log %q within %s:\n%s", p.label, substr, timeout, tail(p.out.String(), 6000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wait waits for the exit and returns the exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("pgcdc (%s) did not exit within %s:\n%s", p.label, timeout, tail(p.out.String(), 6000))
	}
	var exitErr *exec.ExitError
	if errors.As(p.err, &exitErr) {
		return exitErr.ExitCode()
	}
	return 0
}

// stop sends SIGTERM and returns the exit code.
func (p *proc) stop() int {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.wait(time.Minute)
}

// withConn runs fn on a new connection to dsn, bounded by 30 s.
func withConn(t *testing.T, dsn string, fn func(ctx context.Context, conn *pgx.Conn) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := fn(ctx, conn); err != nil {
		t.Fatal(err)
	}
}

// pgExec runs statements on dsn.
func pgExec(t *testing.T, dsn string, stmts ...string) {
	t.Helper()
	withConn(t, dsn, func(ctx context.Context, conn *pgx.Conn) error {
		for _, s := range stmts {
			if _, err := conn.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	})
}

// currentLSN is the server's WAL insert position (after a commit: at or past its end).
func currentLSN(t *testing.T, dsn string) uint64 {
	t.Helper()
	return queryLSN(t, dsn, `SELECT pg_current_wal_lsn()::text`)
}

// confirmedFlush is the slot's confirmed_flush_lsn (0 when the slot does not exist).
func confirmedFlush(t *testing.T, dsn, slot string) uint64 {
	t.Helper()
	return queryLSN(t, dsn, `SELECT coalesce((SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1), '0/0')`, slot)
}

func queryLSN(t *testing.T, dsn, sql string, args ...any) uint64 {
	t.Helper()
	var lsn string
	withConn(t, dsn, func(ctx context.Context, conn *pgx.Conn) error { return conn.QueryRow(ctx, sql, args...).Scan(&lsn) })
	var hi, lo uint64
	if _, err := fmt.Sscanf(lsn, "%X/%X", &hi, &lo); err != nil {
		t.Fatalf("LSN %q: %v", lsn, err)
	}
	return hi<<32 | lo
}

// waitConfirmed waits until the slot's confirmed_flush_lsn reaches lsn.
func waitConfirmed(t *testing.T, dsn, slot string, lsn uint64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := confirmedFlush(t, dsn, slot)
		if got >= lsn {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot %s confirmed_flush_lsn %X, want >= %X after %s", slot, got, lsn, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
