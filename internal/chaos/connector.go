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
//
// With Options.Standby it runs two processes with ha.enabled, each with a log of its own: cur is the
// active one (it holds the slot's lease) and sb the standby. A fault that kills, freezes or cuts the
// active one makes the standby take over; refreshRoles then swaps them, so cur always names the
// process that streams once the takeover is done.
type connector struct {
	bin      string
	env      []string
	logPath  string // the first process's log
	logPathB string // the standby's (Options.Standby)
	ha       bool
	logf     func(string, ...any)

	life sync.Mutex // held across a kill and the start after it, and by the supervisor's restart

	mu       sync.Mutex
	cur      *cproc
	sb       *cproc // the standby (Options.Standby); nil otherwise
	swaps    int    // role swaps seen (takeovers)
	starts   int
	crashed  error  // set when a process ended without the harness asking
	pending  *cproc // a process that failed at start-up, to be started again
	restarts []string
}

// cproc is one pgcdc process.
type cproc struct {
	cmd      *exec.Cmd
	pid      int
	logPath  string     // its log file
	logFrom  int64      // its first byte in the log
	opsMu    sync.Mutex // guards opsAddr (the monitor and the lanes read metrics)
	opsAddr  string     // its operations endpoint
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
	n, ok := p.metric(ctx, `pgcdc_errors_total{kind="kafka_write"}`)
	return n, p.pid, ok
}

// metric reads one series (name with its labels, as exposed) from the process's operations
// endpoint; false when it cannot be read (not started yet, frozen, gone). The address is read from
// the process's log once.
func (p *cproc) metric(ctx context.Context, series string) (float64, bool) {
	p.opsMu.Lock()
	if p.opsAddr == "" {
		if m := opsAddrRE.FindStringSubmatch(readLog(p.logPath, p.logFrom)); m != nil {
			p.opsAddr = m[1]
		}
	}
	addr := p.opsAddr
	p.opsMu.Unlock()
	if addr == "" {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return n, err == nil
		}
	}
	return 0, false
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
	if o.Standby {
		vars["PGCDC_HA_ENABLED"] = "true"
		vars["PGCDC_HA_TAKEOVER_AFTER"] = standbyTakeoverAfter.String()
	}
	env := os.Environ()
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return &connector{bin: bin, env: env, logPath: filepath.Join(o.WorkDir, "pgcdc.log"),
		logPathB: filepath.Join(o.WorkDir, "pgcdc-standby.log"), ha: o.Standby, logf: logf}
}

// standbyTakeoverAfter is ha.takeover_after of the processes of a run with Options.Standby.
const standbyTakeoverAfter = 3 * time.Second

// start starts a new pgcdc process in the active role (the first one, or one killed by a fault).
func (c *connector) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.startLocked(&c.cur, c.logPath)
}

// startStandby starts the standby process (Options.Standby).
func (c *connector) startStandby() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.startLocked(&c.sb, c.logPathB)
}

// startLocked starts a process into the role *role, logging to logPath unless the role's previous
// process had a log (it keeps it). c.mu is held.
func (c *connector) startLocked(role **cproc, logPath string) error {
	if old := *role; old != nil {
		select {
		case <-old.done:
		default:
			return errors.New("pgcdc is already running")
		}
		logPath = old.logPath
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
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
	p := &cproc{cmd: cmd, pid: cmd.Process.Pid, logPath: logPath, done: make(chan struct{})}
	if st != nil {
		p.logFrom = st.Size()
	}
	*role = p
	c.starts++
	go func() {
		_ = cmd.Wait()
		logf.Close()
		out := readLog(p.logPath, p.logFrom)
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
// killing or starting it right now; with a standby it also follows a takeover (refreshRoles).
func (c *connector) supervise() error {
	if !c.life.TryLock() {
		return nil
	}
	defer c.life.Unlock()
	if err := c.restartPending(time.Second); err != nil {
		return err
	}
	c.refreshRoles(context.Background())
	return nil
}

// refreshRoles swaps cur and sb when the standby reports itself active (pgcdc_ha_active 1) and the
// process in cur does not; it returns whether it swapped.
func (c *connector) refreshRoles(ctx context.Context) bool {
	if !c.ha {
		return false
	}
	c.mu.Lock()
	cur, sb := c.cur, c.sb
	c.mu.Unlock()
	if cur == nil || sb == nil {
		return false
	}
	if v, ok := sb.metric(ctx, "pgcdc_ha_active"); !ok || v != 1 {
		return false
	}
	if v, ok := cur.metric(ctx, "pgcdc_ha_active"); ok && v == 1 {
		return false // the old one has not noticed yet
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != cur || c.sb != sb {
		return false
	}
	c.cur, c.sb = sb, cur
	c.swaps++
	c.logf("chaos: pgcdc pid %d is the active one now, pid %d the standby", sb.pid, cur.pid)
	return true
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
	lines := strings.Split(strings.TrimSpace(readLog(p.logPath, p.logFrom)), "\n")
	c.restarts = append(c.restarts, fmt.Sprintf("pid %d exited 1 during start-up: %s", p.pid, lines[len(lines)-1]))
	c.logf("chaos: pgcdc pid %d failed during start-up (a server went away); starting it again", p.pid)
	defer c.mu.Unlock()
	if c.sb == p {
		return c.startLocked(&c.sb, p.logPath)
	}
	return c.startLocked(&c.cur, p.logPath)
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

// stop sends SIGTERM to the active process and returns the exit code.
func (c *connector) stop(limit time.Duration) (int, error) {
	c.mu.Lock()
	p := c.cur
	c.mu.Unlock()
	if p == nil {
		return 0, errors.New("no pgcdc process to stop")
	}
	return c.stopProc(p, limit)
}

// stopProc sends SIGTERM to p and returns its exit code.
func (c *connector) stopProc(p *cproc, limit time.Duration) (int, error) {
	c.mu.Lock()
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
		return 0, fmt.Errorf("pgcdc pid %d did not stop within %s of SIGTERM\n%s", p.pid, limit, tailOf(p.logPath))
	}
	ws, _ := p.state.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 0, fmt.Errorf("pgcdc pid %d died of %v after SIGTERM\n%s", p.pid, ws.Signal(), tailOf(p.logPath))
	}
	return ws.ExitStatus(), nil
}

// close kills whatever still runs.
func (c *connector) close() {
	c.mu.Lock()
	ps := []*cproc{c.cur, c.sb}
	for _, p := range ps {
		if p != nil {
			p.expected = true
		}
	}
	c.mu.Unlock()
	for _, p := range ps {
		if p != nil {
			_ = syscall.Kill(p.pid, syscall.SIGCONT) // a frozen one dies of SIGKILL too, but do not leave it stopped
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
			<-p.done
		}
	}
}

// tail returns the end of pgcdc's log.
func (c *connector) tail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tailLocked()
}

func (c *connector) tailLocked() string {
	out := tailOf(c.logPath)
	if c.ha {
		out += "\n" + tailOf(c.logPathB)
	}
	return out
}

func tailOf(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no pgcdc log: " + err.Error() + ")"
	}
	const n = 6000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return "pgcdc log (" + path + ", end):\n" + string(b)
}

// logMark is where each pgcdc log ends at a moment (see since).
type logMark map[string]int64

// mark notes where the logs of every process (both, with a standby) end now.
func (c *connector) mark() logMark {
	m := logMark{c.logPath: 0}
	if c.ha {
		m[c.logPathB] = 0
	}
	for path := range m {
		if st, err := os.Stat(path); err == nil {
			m[path] = st.Size()
		}
	}
	return m
}

// since returns what every process logged after m (one log after the other).
func (c *connector) since(m logMark) string {
	var b strings.Builder
	for path, offset := range m {
		b.WriteString(readLog(path, offset))
	}
	return b.String()
}

// readLog returns the log at path from offset on.
func readLog(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < offset {
		return ""
	}
	return string(b[offset:])
}
