package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// connector runs the pgcdc binary as a child process, one at a time, and acts as its supervisor for
// start-up failures: a pgcdc that exits 1 before it streams because a server went away in the middle
// of its start-up (another lane restarted PostgreSQL or stopped brokers) is started again, as
// Kubernetes or systemd would, and the restart is reported (Result.SupervisorRestarts). Any other exit
// the harness did not ask for fails the run.
type connector struct {
	bin     string
	env     []string
	logPath string
	logf    func(string, ...any)

	life sync.Mutex // held across a kill and the start after it, and by the supervisor's restart

	mu       sync.Mutex
	cur      *cproc
	starts   int
	crashed  error  // set when a process ended without the harness asking
	pending  *cproc // a process that failed at start-up, to be started again
	restarts []string
}

// cproc is one pgcdc process.
type cproc struct {
	cmd      *exec.Cmd
	pid      int
	logFrom  int64  // its first byte in the log
	opsAddr  string // its operations endpoint (read by the monitor only)
	done     chan struct{}
	ended    time.Time
	state    *os.ProcessState
	expected bool // the harness killed or stopped it (guarded by connector.mu)
}

// opsAddrRE finds the operations endpoint's address in pgcdc's start-up log line.
var opsAddrRE = regexp.MustCompile(`"addr":"([^"]+)"[^\n]*"message":"operations endpoint`)

// failedWrites reads pgcdc_errors_total{kind="kafka_write"} (failed Kafka write attempts) from the
// running pgcdc's operations endpoint, with the pid of the process it counts for.
func (c *connector) failedWrites(ctx context.Context) (float64, int, bool) {
	c.mu.Lock()
	p := c.cur
	c.mu.Unlock()
	if p == nil {
		return 0, 0, false
	}
	if p.opsAddr == "" {
		m := opsAddrRE.FindStringSubmatch(c.logSince(p.logFrom))
		if m == nil {
			return 0, 0, false
		}
		p.opsAddr = m[1]
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.opsAddr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), `pgcdc_errors_total{kind="kafka_write"} `); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return n, p.pid, err == nil
		}
	}
	return 0, 0, false
}

// startupFailureRE matches the error of a pgcdc start-up cut short by a server that went away.
var startupFailureRE = regexp.MustCompile(`"level":"error".*(connection reset|connection refused|broken pipe|EOF|terminating connection|the database system is|SQLSTATE 57P|SQLSTATE 08|i/o timeout|no broker of)`)

// newConnector configures pgcdc for the run: the cluster's brokers, topics with replication factor 3
// and min.insync.replicas 2, start-up timeouts long enough to ride out a server restart (a pgcdc
// started while PostgreSQL restarts must wait for it, not fail).
func newConnector(bin string, srv *servers, prefix string, o Options, logf func(string, ...any)) *connector {
	vars := map[string]string{
		"PGCDC_POSTGRES_DSN":                          srv.dsn,
		"PGCDC_POSTGRES_SLOT":                         slotName,
		"PGCDC_POSTGRES_PUBLICATION":                  publication,
		"PGCDC_POSTGRES_STATUS_INTERVAL":              "1s",
		"PGCDC_POSTGRES_CONNECT_TIMEOUT":              "3m",
		"PGCDC_POSTGRES_PUBLICATION_REFRESH_INTERVAL": "5s",
		"PGCDC_POSTGRES_STREAMING":                    strconv.FormatBool(o.Streaming),
		"PGCDC_POSTGRES_SPOOL_DIR":                    filepath.Join(o.WorkDir, "spool"),
		"PGCDC_TABLES_INCLUDE":                        "public.c_a,public.c_b,public.c_c,public.chaos_ledger,public.chaos_marker",
		"PGCDC_KAFKA_BROKERS":                         strings.Join(srv.kafka.Addrs(), ","),
		"PGCDC_KAFKA_TOPIC_PREFIX":                    prefix,
		"PGCDC_KAFKA_CONNECT_TIMEOUT":                 "3m",
		"PGCDC_KAFKA_PARTITIONS":                      strconv.Itoa(o.Partitions),
		"PGCDC_KAFKA_REPLICATION_FACTOR":              "3",
		"PGCDC_KAFKA_TOPIC_CONFIG":                    "min.insync.replicas=2",
		"PGCDC_KAFKA_MAX_IN_FLIGHT_BYTES":             "16MiB",
		"PGCDC_KAFKA_WRITE_TIMEOUT":                   o.WriteTimeout.String(),
		"PGCDC_KAFKA_SHUTDOWN_TIMEOUT":                "60s",
		"PGCDC_EVENTS_KEY_SCHEMAS":                    "false",
		"PGCDC_EVENTS_VALUE_SCHEMAS":                  "false",
		"PGCDC_HEARTBEAT_INTERVAL":                    "2s",
		"PGCDC_SNAPSHOT_MODE":                         "no_data", // the tables are empty when pgcdc first starts
		"PGCDC_LOG_PROGRESS_INTERVAL":                 "10s",
		"PGCDC_METRICS_LISTEN":                        "127.0.0.1:0",
	}
	env := os.Environ()
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return &connector{bin: bin, env: env, logPath: filepath.Join(o.WorkDir, "pgcdc.log"), logf: logf}
}

// start starts a new pgcdc process.
func (c *connector) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil {
		select {
		case <-c.cur.done:
		default:
			return errors.New("pgcdc is already running")
		}
	}
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin, "run")
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(logf, "==== chaos: starting pgcdc at %s\n", time.Now().Format(time.RFC3339Nano))
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start pgcdc: %w", err)
	}
	st, _ := logf.Stat()
	p := &cproc{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	if st != nil {
		p.logFrom = st.Size()
	}
	c.cur = p
	c.starts++
	go func() {
		_ = cmd.Wait()
		logf.Close()
		out := c.logSince(p.logFrom)
		c.mu.Lock()
		p.state, p.ended = cmd.ProcessState, time.Now()
		switch {
		case p.expected || c.crashed != nil:
		case cmd.ProcessState.ExitCode() == 1 && !strings.Contains(out, `"message":"streaming"`) && startupFailureRE.MatchString(out):
			c.pending = p
		default:
			c.crashed = fmt.Errorf("pgcdc (pid %d) ended on its own: %v", p.pid, cmd.ProcessState)
		}
		c.mu.Unlock()
		close(p.done)
	}()
	return nil
}

// supervise starts pgcdc again when it failed at start-up (a second after it ended), unless a lane is
// killing or starting it right now.
func (c *connector) supervise() error {
	if !c.life.TryLock() {
		return nil
	}
	defer c.life.Unlock()
	return c.restartPending(time.Second)
}

// restartPending starts pgcdc again if it failed at start-up at least wait ago; c.life must be held.
func (c *connector) restartPending(wait time.Duration) error {
	c.mu.Lock()
	p := c.pending
	if p == nil || time.Since(p.ended) < wait {
		c.mu.Unlock()
		return nil
	}
	c.pending = nil
	lines := strings.Split(strings.TrimSpace(c.logSince(p.logFrom)), "\n")
	c.restarts = append(c.restarts, fmt.Sprintf("pid %d exited 1 during start-up: %s", p.pid, lines[len(lines)-1]))
	c.mu.Unlock()
	c.logf("chaos: pgcdc pid %d failed during start-up (a server went away); starting it again", p.pid)
	return c.start()
}

// supervisorRestarts returns the start-up failures the supervisor restarted.
func (c *connector) supervisorRestarts() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.restarts...)
}

// running returns the current process's id and whether it still runs.
func (c *connector) running() (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return 0, false
	}
	select {
	case <-c.cur.done:
		return c.cur.pid, false
	default:
		return c.cur.pid, true
	}
}

// pid is the running process's id.
func (c *connector) pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return 0
	}
	return c.cur.pid
}

// unexpected returns an error once a pgcdc process ended without the harness asking.
func (c *connector) unexpected() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashed != nil {
		return fmt.Errorf("%w\n%s", c.crashed, c.tailLocked())
	}
	return nil
}

// kill sends SIGKILL and returns the dead process's pid and wait status, proving how it died. The
// caller holds c.life. A process that failed at start-up is started again first.
func (c *connector) kill(limit time.Duration) (int, syscall.WaitStatus, error) {
	if err := c.restartPending(0); err != nil {
		return 0, 0, err
	}
	c.mu.Lock()
	p := c.cur
	if p == nil {
		c.mu.Unlock()
		return 0, 0, errors.New("no pgcdc process to kill")
	}
	p.expected = true
	c.mu.Unlock()
	if err := syscall.Kill(p.pid, syscall.SIGKILL); err != nil {
		return p.pid, 0, err
	}
	select {
	case <-p.done:
	case <-time.After(limit):
		return p.pid, 0, fmt.Errorf("pgcdc pid %d still running %s after SIGKILL", p.pid, limit)
	}
	ws, _ := p.state.Sys().(syscall.WaitStatus)
	return p.pid, ws, nil
}

// stop sends SIGTERM and returns the exit code.
func (c *connector) stop(limit time.Duration) (int, error) {
	c.mu.Lock()
	p := c.cur
	if p == nil {
		c.mu.Unlock()
		return 0, errors.New("no pgcdc process to stop")
	}
	p.expected = true
	c.mu.Unlock()
	if err := syscall.Kill(p.pid, syscall.SIGTERM); err != nil {
		return 0, err
	}
	select {
	case <-p.done:
	case <-time.After(limit):
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
		<-p.done
		return 0, fmt.Errorf("pgcdc pid %d did not stop within %s of SIGTERM\n%s", p.pid, limit, c.tail())
	}
	ws, _ := p.state.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 0, fmt.Errorf("pgcdc pid %d died of %v after SIGTERM\n%s", p.pid, ws.Signal(), c.tail())
	}
	return ws.ExitStatus(), nil
}

// close kills whatever still runs.
func (c *connector) close() {
	c.mu.Lock()
	p := c.cur
	if p != nil {
		p.expected = true
	}
	c.mu.Unlock()
	if p != nil {
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
		<-p.done
	}
}

// tail returns the end of pgcdc's log.
func (c *connector) tail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tailLocked()
}

func (c *connector) tailLocked() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return "(no pgcdc log: " + err.Error() + ")"
	}
	const n = 6000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return "pgcdc log (" + c.logPath + ", end):\n" + string(b)
}

// logSize is the current size of pgcdc's log (for logSince).
func (c *connector) logSize() int64 {
	st, err := os.Stat(c.logPath)
	if err != nil {
		return 0
	}
	return st.Size()
}

// logSince returns pgcdc's log from offset on.
func (c *connector) logSince(offset int64) string {
	b, err := os.ReadFile(c.logPath)
	if err != nil || int64(len(b)) < offset {
		return ""
	}
	return string(b[offset:])
}
