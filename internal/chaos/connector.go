package chaos

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// connector runs the pgcdc binary as a child process, one at a time.
type connector struct {
	bin     string
	env     []string
	logPath string
	logf    func(string, ...any)

	mu      sync.Mutex
	cur     *cproc
	starts  int
	crashed error // set when a process ended without the harness asking
}

// cproc is one pgcdc process.
type cproc struct {
	cmd      *exec.Cmd
	pid      int
	done     chan struct{}
	state    *os.ProcessState
	expected bool // the harness killed or stopped it (guarded by connector.mu)
}

func newConnector(bin string, srv *servers, o Options, logf func(string, ...any)) *connector {
	vars := map[string]string{
		"PGCDC_POSTGRES_DSN":                          srv.dsn,
		"PGCDC_POSTGRES_SLOT":                         slotName,
		"PGCDC_POSTGRES_PUBLICATION":                  publication,
		"PGCDC_POSTGRES_STATUS_INTERVAL":              "1s",
		"PGCDC_POSTGRES_CONNECT_TIMEOUT":              "30s",
		"PGCDC_POSTGRES_PUBLICATION_REFRESH_INTERVAL": "5s",
		"PGCDC_POSTGRES_STREAMING":                    strconv.FormatBool(o.Streaming),
		"PGCDC_POSTGRES_SPOOL_DIR":                    filepath.Join(o.WorkDir, "spool"),
		"PGCDC_TABLES_INCLUDE":                        "public.c_a,public.c_b,public.c_c,public.chaos_ledger",
		"PGCDC_KAFKA_BROKERS":                         srv.kafka.Addr(),
		"PGCDC_KAFKA_TOPIC_PREFIX":                    topicPrefix,
		"PGCDC_KAFKA_CONNECT_TIMEOUT":                 "60s",
		"PGCDC_KAFKA_PARTITIONS":                      strconv.Itoa(o.Partitions),
		"PGCDC_KAFKA_MAX_IN_FLIGHT_BYTES":             "16MiB",
		"PGCDC_KAFKA_WRITE_TIMEOUT":                   "10s",
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
	p := &cproc{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	c.cur = p
	c.starts++
	go func() {
		_ = cmd.Wait()
		logf.Close()
		c.mu.Lock()
		p.state = cmd.ProcessState
		if !p.expected && c.crashed == nil {
			c.crashed = fmt.Errorf("pgcdc (pid %d) ended on its own: %v", p.pid, cmd.ProcessState)
		}
		c.mu.Unlock()
		close(p.done)
	}()
	return nil
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

// kill sends SIGKILL and returns the dead process's pid and wait status, proving how it died.
func (c *connector) kill(limit time.Duration) (int, syscall.WaitStatus, error) {
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
