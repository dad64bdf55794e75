// Package debeziumtest runs Debezium itself (io.debezium:debezium-connector-postgres in Kafka Connect
// standalone, with Kafka Connect's JsonConverter) against a PostgreSQL and a Kafka on loopback, so
// comparison tests can diff pgcdc's records against the ones Debezium writes for the same changes.
//
// The jars come from Maven Central through test/debezium/pom.xml and are cached in .cache/debezium
// (see Libs). The worker runs with Pdeathsig=SIGKILL, so it dies with the test binary.
package debeziumtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf16"

	"github.com/jackc/pgx/v5"
)

// Options configures one Debezium PostgreSQL connector in its own Kafka Connect standalone worker.
type Options struct {
	// PostgresDSN is postgres://user[:password]@host:port/db?...; host, port, user, password and
	// database become the connector's database.* properties.
	PostgresDSN string
	// Brokers are the Kafka bootstrap addresses.
	Brokers []string
	// TopicPrefix is topic.prefix (required).
	TopicPrefix string
	// Slot and Publication are slot.name and publication.name (empty: Debezium's defaults "debezium"
	// and "dbz_publication"). Debezium creates them when missing; publication.autocreate.mode is left at
	// Debezium's default ("all_tables") unless set in Extra ("filtered" or "disabled").
	Slot, Publication string
	// Tables are table.include.list entries ("schema.table", regular expressions as in Debezium).
	Tables []string
	// Partitions is topic.creation.default.partitions for the topics Kafka Connect creates (default 1).
	Partitions int
	// Name is the connector name (default "debezium-" + TopicPrefix).
	Name string
	// Extra are further connector properties; they override the defaults (e.g. snapshot.mode,
	// decimal.handling.mode, tombstones.on.delete).
	Extra map[string]string
	// Worker are further worker properties; they override the defaults.
	Worker map[string]string
	// KeySchemas and ValueSchemas are the JsonConverter's key/value schemas.enable.
	KeySchemas, ValueSchemas bool
	// StartTimeout bounds the wait for the task to run and the slot to be streamed (default 3 min).
	StartTimeout time.Duration
	// JVMOptions, when set, replace the worker JVM's default heap, GC and JIT options (a small heap,
	// SerialGC and C1 only, which start fast for tests); a benchmark passes e.g. -Xmx1g alone to run
	// the JVM as a user would.
	JVMOptions []string
}

// Connect is a running Kafka Connect standalone worker with one Debezium PostgreSQL connector.
type Connect struct {
	// Name is the connector name; RestURL the worker's REST API (http://127.0.0.1:port).
	Name, RestURL string
	dir           string
	cmd           *exec.Cmd
	done          chan struct{}
	waitErr       error
	stopOnce      sync.Once
}

// DefaultConnectorProps returns the connector properties Start writes for opts, before Extra.
func defaultConnectorProps(opts Options, name string) (map[string]string, error) {
	u, err := url.Parse(opts.PostgresDSN)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("PostgresDSN must be a postgres:// URL")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		host = "127.0.0.1"
	}
	if port == "" {
		port = "5432"
	}
	user := "postgres"
	password := ""
	if u.User != nil {
		user = u.User.Username()
		password, _ = u.User.Password()
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" {
		db = user
	}
	partitions := opts.Partitions
	if partitions <= 0 {
		partitions = 1
	}
	p := map[string]string{
		"name":              name,
		"connector.class":   "io.debezium.connector.postgresql.PostgresConnector",
		"tasks.max":         "1",
		"database.hostname": host,
		"database.port":     port,
		"database.user":     user,
		"database.dbname":   db,
		"topic.prefix":      opts.TopicPrefix,
		"plugin.name":       "pgoutput",
		"snapshot.mode":     "no_data",
		// Kafka Connect creates the topics (the test broker does not auto-create them).
		"topic.creation.default.replication.factor": "1",
		"topic.creation.default.partitions":         strconv.Itoa(partitions),
	}
	if password != "" {
		p["database.password"] = password
	}
	if opts.Slot != "" {
		p["slot.name"] = opts.Slot
	}
	if opts.Publication != "" {
		p["publication.name"] = opts.Publication
	}
	if len(opts.Tables) > 0 {
		p["table.include.list"] = strings.Join(opts.Tables, ",")
	}
	for k, v := range opts.Extra {
		p[k] = v
	}
	return p, nil
}

// Start writes the worker and connector properties into a temporary folder, starts
// org.apache.kafka.connect.cli.ConnectStandalone with them and returns once the connector's task is
// RUNNING and (unless the snapshot mode never streams) its replication slot is in use, so that
// changes committed after Start returns are captured. On failure the error holds the log's tail.
func Start(ctx context.Context, opts Options) (*Connect, error) {
	if opts.TopicPrefix == "" {
		return nil, errors.New("debeziumtest: TopicPrefix is required")
	}
	if len(opts.Brokers) == 0 {
		return nil, errors.New("debeziumtest: Brokers are required")
	}
	libs, err := Libs()
	if err != nil {
		return nil, err
	}
	name := opts.Name
	if name == "" {
		name = "debezium-" + opts.TopicPrefix
	}
	conn, err := defaultConnectorProps(opts, name)
	if err != nil {
		return nil, err
	}
	restPort, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgcdc-debezium-")
	if err != nil {
		return nil, err
	}
	worker := map[string]string{
		"bootstrap.servers":              strings.Join(opts.Brokers, ","),
		"key.converter":                  "org.apache.kafka.connect.json.JsonConverter",
		"value.converter":                "org.apache.kafka.connect.json.JsonConverter",
		"key.converter.schemas.enable":   strconv.FormatBool(opts.KeySchemas),
		"value.converter.schemas.enable": strconv.FormatBool(opts.ValueSchemas),
		"offset.storage.file.filename":   filepath.Join(dir, "offsets.dat"),
		"offset.flush.interval.ms":       "1000",
		"listeners":                      fmt.Sprintf("http://127.0.0.1:%d", restPort),
		"topic.creation.enable":          "true",
		// The connector is on the class path; no plugin.path to scan.
		"plugin.discovery":   "service_load",
		"producer.linger.ms": "0",
	}
	for k, v := range opts.Worker {
		worker[k] = v
	}
	workerPath := filepath.Join(dir, "worker.properties")
	connPath := filepath.Join(dir, "connector.properties")
	if err := writeProps(workerPath, worker); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := writeProps(connPath, conn); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "connect.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	jvm := opts.JVMOptions
	if len(jvm) == 0 {
		jvm = []string{"-Xmx512m", "-Xms128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"}
	}
	args := append(append([]string{}, jvm...),
		"-Djava.awt.headless=true",
		"-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
		"-Dorg.slf4j.simpleLogger.log.io.debezium=info",
		"-Dorg.slf4j.simpleLogger.showDateTime=true",
		"-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
		"-cp", filepath.Join(libs, "*"),
		"org.apache.kafka.connect.cli.ConnectStandalone", workerPath, connPath)
	cmd := exec.Command(javaBin(), args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start Kafka Connect: %w", err)
	}
	c := &Connect{Name: name, RestURL: fmt.Sprintf("http://127.0.0.1:%d", restPort), dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() { // ends when the JVM exits, which Stop waits for
		c.waitErr = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = 3 * time.Minute
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.waitRunning(wctx); err != nil {
		c.Stop()
		return nil, err
	}
	if mode := conn["snapshot.mode"]; mode != "initial_only" {
		slot := conn["slot.name"]
		if slot == "" {
			slot = "debezium"
		}
		if err := c.waitSlotActive(wctx, opts.PostgresDSN, slot); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

type statusReply struct {
	Connector struct {
		State string `json:"state"`
		Trace string `json:"trace"`
	} `json:"connector"`
	Tasks []struct {
		ID    int    `json:"id"`
		State string `json:"state"`
		Trace string `json:"trace"`
	} `json:"tasks"`
}

// Pid is the worker JVM's process id (for CPU and memory figures).
func (c *Connect) Pid() int { return c.cmd.Process.Pid }

// Exited reports whether the worker has exited, and with what.
func (c *Connect) Exited() (bool, error) {
	if c.exited() {
		return true, c.waitErr
	}
	return false, nil
}

func (c *Connect) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// waitRunning polls GET /connectors/<name>/status until the connector and its task are RUNNING.
func (c *Connect) waitRunning(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	statusURL := c.RestURL + "/connectors/" + url.PathEscape(c.Name) + "/status"
	last := "no answer from the REST API yet"
	for {
		if c.exited() {
			return fmt.Errorf("Kafka Connect exited during start-up: %v\n%s", c.waitErr, tail(c.Log(), 6000))
		}
		st, err := c.status(ctx, client, statusURL)
		if err == nil {
			last = fmt.Sprintf("connector %s, tasks %+v", st.Connector.State, st.Tasks)
			if st.Connector.State == "FAILED" {
				return fmt.Errorf("Debezium connector %s FAILED: %s\n%s", c.Name, st.Connector.Trace, tail(c.Log(), 6000))
			}
			running := st.Connector.State == "RUNNING" && len(st.Tasks) > 0
			for _, tk := range st.Tasks {
				if tk.State == "FAILED" {
					return fmt.Errorf("Debezium task %s-%d FAILED: %s\n%s", c.Name, tk.ID, tk.Trace, tail(c.Log(), 6000))
				}
				running = running && tk.State == "RUNNING"
			}
			if running {
				return nil
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("Debezium connector %s not running: %v (last status: %s)\n%s", c.Name, ctx.Err(), last, tail(c.Log(), 6000))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Connect) status(ctx context.Context, client *http.Client, statusURL string) (*statusReply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, statusURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", statusURL, resp.Status)
	}
	var st statusReply
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("GET %s: %w", statusURL, err)
	}
	return &st, nil
}

// waitSlotActive waits until a walsender streams the replication slot: from then on Debezium
// captures every change committed.
func (c *Connect) waitSlotActive(ctx context.Context, dsn, slot string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL to watch slot %s: %w", slot, err)
	}
	defer conn.Close(context.Background())
	for {
		if c.exited() {
			return fmt.Errorf("Kafka Connect exited during start-up: %v\n%s", c.waitErr, tail(c.Log(), 6000))
		}
		var active bool
		err := conn.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active)
		if err == nil && active {
			return nil
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) && ctx.Err() == nil {
			return fmt.Errorf("watch slot %s: %w", slot, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("Debezium is not streaming slot %s: %v\n%s", slot, ctx.Err(), tail(c.Log(), 6000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop shuts the worker down (SIGTERM, SIGKILL after 30 s) and removes its folder. The replication
// slot stays (Debezium's slot.drop.on.stop defaults to false); testenv.NewDatabase drops it.
func (c *Connect) Stop() {
	c.stopOnce.Do(func() {
		if !c.exited() {
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.done:
			case <-time.After(30 * time.Second):
				_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
				<-c.done
			}
		}
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		os.RemoveAll(c.dir)
	})
}

// Log returns the worker's log (stdout and stderr; Debezium at INFO, the rest at WARN). After Stop it
// is empty.
func (c *Connect) Log() string {
	b, err := os.ReadFile(filepath.Join(c.dir, "connect.log"))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return string(b)
}

func javaBin() string {
	if home := os.Getenv("JAVA_HOME"); home != "" {
		return filepath.Join(home, "bin", "java")
	}
	return "java"
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeProps writes a Java properties file, keys sorted, with keys and values escaped.
func writeProps(path string, props map[string]string) error {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(escapeProp(k, true))
		b.WriteByte('=')
		b.WriteString(escapeProp(props[k], false))
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

func escapeProp(s string, key bool) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '=' || r == ':' || r == '#' || r == '!':
			if key || i == 0 {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		case r == ' ':
			if key || i == 0 {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		case r > 0x7e:
			if r > 0xffff {
				r1, r2 := utf16.EncodeRune(r)
				fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
