package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Run is one consumer's pass over a range of WAL, from its process's start to the end criterion.
type Run struct {
	Consumer     string `json:"consumer"` // pg_recvlogical, pgcdc or debezium
	Label        string `json:"label"`
	Variant      string `json:"variant,omitempty"` // the pgcdc configuration (throughput mode)
	Slot         string `json:"slot"`
	ValueSchemas *bool  `json:"value_schemas,omitempty"`
	Rows         int64  `json:"rows"`
	// Seconds runs from the process's start to the end criterion: for pg_recvlogical the walsender's
	// sent_lsn reaching the last commit's end, for pgcdc the slot's confirmed_flush_lsn reaching it,
	// for Debezium the topic's end offset reaching the workload's row count.
	Seconds float64 `json:"seconds"`
	// StartupSeconds is the part of Seconds before pgcdc logged "streaming" (checks, publication,
	// topics, slot), or before Debezium's task ran and streamed its slot; 0 for pg_recvlogical.
	StartupSeconds float64 `json:"startup_seconds"`
	RowsPerSec     float64 `json:"rows_per_sec"`
	// CPU seconds (utime+stime) over the run and per event; -1 when not measurable.
	ClientCPU         float64 `json:"client_cpu_seconds"`
	ClientCPUPerEvent float64 `json:"client_cpu_us_per_event"`
	WalsenderCPU      float64 `json:"walsender_cpu_seconds"`
	WalsenderPerEvent float64 `json:"walsender_cpu_us_per_event"`
	BrokerCPU         float64 `json:"broker_cpu_seconds"`
	BrokerPerEvent    float64 `json:"broker_cpu_us_per_event"`
	PeakRSS           int64   `json:"peak_rss_bytes"`
	Topic             string  `json:"topic,omitempty"`
	TopicRecords      int64   `json:"topic_records,omitempty"`
	AvgRecordBytes    float64 `json:"avg_record_bytes,omitempty"` // key + value
	// ProduceRequests is how many record batches pgcdc wrote (its write-duration count), and
	// RecordsPerRequest the rows over it; 0 when not known.
	ProduceRequests   int64   `json:"produce_requests,omitempty"`
	RecordsPerRequest float64 `json:"records_per_request,omitempty"`
	Log               string  `json:"log"`
}

type runSpec struct {
	label     string
	cmd       *exec.Cmd
	slot      string
	target    uint64
	rows      int64
	useSent   bool   // end on the walsender's sent_lsn (pg_recvlogical) instead of confirmed_flush_lsn
	readyLine string // a log line marking the start of streaming (pgcdc)
	// countRequests: read pgcdc's produce requests from its metrics at the end (produceRequests).
	countRequests bool
	// startLimit bounds the wait for readyLine (default 2 minutes).
	startLimit time.Duration
	// during runs once streaming started, concurrently with the wait; it must return when its
	// context ends.
	during func(ctx context.Context, pid int)
	// afterDone runs when the end criterion was met, before the process is stopped.
	afterDone func(pid int)
}

// proc is a running consumer process whose output goes to a log file.
type proc struct {
	cmd     *exec.Cmd
	log     string
	started time.Time
	ready   chan time.Time // receives once the ready line was seen (at once when there is none)
	exited  chan error     // receives the exit status
	stopped bool
}

func startProc(cmd *exec.Cmd, logPath, readyLine string) (*proc, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &proc{cmd: cmd, log: logPath, ready: make(chan time.Time, 1), exited: make(chan error, 1)}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	if readyLine == "" {
		p.ready <- p.started
	}
	var copied sync.WaitGroup
	copied.Add(1)
	go func() { // copies the output to the log file and spots the ready line; ends at EOF
		defer copied.Done()
		defer logFile.Close()
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		seen := readyLine == ""
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if !seen && strings.Contains(line, readyLine) {
				seen = true
				p.ready <- time.Now()
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() {
		copied.Wait()
		p.exited <- cmd.Wait()
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits up to a minute for the exit, then kills.
func (p *proc) stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitReady waits (bounded) for the ready line.
func (p *proc) waitReady(ctx context.Context, limit time.Duration) (time.Time, error) {
	select {
	case at := <-p.ready:
		return at, nil
	case err := <-p.exited:
		p.stopped = true
		return time.Time{}, fmt.Errorf("%s exited during start-up (%v):\n%s", p.cmd.Path, err, tailOf(p.log, 3000))
	case <-time.After(limit):
		return time.Time{}, fmt.Errorf("%s not streaming after %s:\n%s", p.cmd.Path, limit, tailOf(p.log, 3000))
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

// measure starts the consumer, waits (bounded by o.runTimeout) for its end criterion while polling
// the slot every 20ms, collects CPU and memory figures, and stops the process.
func measure(ctx context.Context, o *options, s *servers, poll *pgx.Conn, spec runSpec) (*Run, error) {
	r := &Run{Label: spec.label, Slot: spec.slot, Rows: spec.rows, Consumer: filepath.Base(spec.cmd.Path)}
	r.Log = filepath.Join(o.outDir, "logs", spec.label+".log")
	brokerBefore := cpuSeconds(s.brokerPID)
	p, err := startProc(spec.cmd, r.Log, spec.readyLine)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec.label, err)
	}
	defer p.stop()
	t0 := p.started
	startLimit := spec.startLimit
	if startLimit <= 0 {
		startLimit = 2 * time.Minute
	}
	readyAt, err := p.waitReady(ctx, startLimit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec.label, err)
	}
	r.StartupSeconds = readyAt.Sub(t0).Seconds()
	if spec.readyLine == "" {
		r.StartupSeconds = 0
	}
	dctx, cancelDuring := context.WithCancel(ctx)
	var duringDone sync.WaitGroup
	defer func() { cancelDuring(); duringDone.Wait() }()
	if spec.during != nil {
		duringDone.Add(1)
		go func() { defer duringDone.Done(); spec.during(dctx, p.pid()) }()
	}

	deadline := t0.Add(o.runTimeout)
	walsenderPID := 0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case err := <-p.exited:
			p.stopped = true
			return nil, fmt.Errorf("%s exited before it was done (%v); log %s:\n%s", spec.label, err, r.Log, tailOf(r.Log, 3000))
		case <-tick.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		now := time.Now()
		st, err := readSlot(ctx, poll, spec.slot)
		if err != nil {
			return nil, err
		}
		if st.pid != 0 {
			walsenderPID = st.pid
		}
		pos := st.confirmed
		if spec.useSent {
			pos = st.sent
		}
		if pos >= spec.target {
			r.Seconds = now.Sub(t0).Seconds()
			done = true
		} else if now.After(deadline) {
			return nil, fmt.Errorf("%s: not done after %s (at %s of %s); log %s", spec.label, o.runTimeout, fmtLSN(pos), fmtLSN(spec.target), r.Log)
		}
	}
	r.collect(s, p.pid(), walsenderPID, brokerBefore)
	if spec.countRequests {
		if n := produceRequests(ctx, r.Log); n > 0 {
			r.ProduceRequests, r.RecordsPerRequest = n, float64(r.Rows)/float64(n)
		}
	}
	if spec.afterDone != nil {
		spec.afterDone(p.pid())
	}
	cancelDuring()
	duringDone.Wait()
	p.stop()
	r.rates()
	return r, nil
}

// collect reads a run's figures at its end, before its process stops: the client's CPU and peak
// RSS, its walsender's CPU (when PostgreSQL is local; walsenderPID 0: not measured) and the
// broker's since brokerBefore (-1 for what cannot be read).
func (r *Run) collect(s *servers, pid, walsenderPID int, brokerBefore float64) {
	r.ClientCPU = cpuSeconds(pid)
	r.PeakRSS = peakRSS(pid)
	r.WalsenderCPU = -1
	if s.pgLocal {
		r.WalsenderCPU = cpuSeconds(walsenderPID)
	}
	r.BrokerCPU = -1
	if after := cpuSeconds(s.brokerPID); after >= 0 && brokerBefore >= 0 {
		r.BrokerCPU = after - brokerBefore
	}
}

// rates derives rows/s and the CPU µs per event from Seconds, Rows and the CPU seconds.
func (r *Run) rates() {
	r.RowsPerSec = float64(r.Rows) / r.Seconds
	r.ClientCPUPerEvent = perEvent(r.ClientCPU, r.Rows)
	r.WalsenderPerEvent = perEvent(r.WalsenderCPU, r.Rows)
	r.BrokerPerEvent = perEvent(r.BrokerCPU, r.Rows)
}

// perEvent is CPU seconds as µs per event; -1 when not measured.
func perEvent(sec float64, rows int64) float64 {
	if sec < 0 || rows == 0 {
		return -1
	}
	return sec * 1e6 / float64(rows)
}

func tailOf(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// recvlogicalSpec reads slot to /dev/null with pgoutput, protocol 1 and publication pub.
func recvlogicalSpec(s *servers, dsn, label, slot, pub string, target uint64, rows int64) runSpec {
	cmd := exec.Command(s.recvBin, "-d", dsn, "--slot", slot, "--start", "--no-loop",
		"-o", "proto_version=1", "-o", "publication_names="+pub,
		"-f", "/dev/null", "-F", "0", "-s", "1")
	return runSpec{label: label, cmd: cmd, slot: slot, target: target, rows: rows, useSent: true}
}

// pgcdcSpec runs `pgcdc run` configured through the environment (as connector/harness_test.go
// does). extra overrides or adds PGCDC_* variables.
func pgcdcSpec(o *options, s *servers, dsn, label, slot, pub, prefix, table string, valueSchemas bool,
	target uint64, rows int64, extra map[string]string) runSpec {
	vars := map[string]string{
		"PGCDC_POSTGRES_DSN":             dsn,
		"PGCDC_POSTGRES_SLOT":            slot,
		"PGCDC_POSTGRES_PUBLICATION":     pub,
		"PGCDC_POSTGRES_STATUS_INTERVAL": o.statusInterval.String(),
		"PGCDC_POSTGRES_CONNECT_TIMEOUT": "30s",
		"PGCDC_POSTGRES_SPOOL_DIR":       filepath.Join(o.outDir, "spool", slot),
		"PGCDC_TABLES_INCLUDE":           "public." + table,
		"PGCDC_KAFKA_BROKERS":            strings.Join(s.brokers, ","),
		"PGCDC_KAFKA_TOPIC_PREFIX":       prefix,
		"PGCDC_KAFKA_PARTITIONS":         fmt.Sprint(o.partitions),
		"PGCDC_KAFKA_CONNECT_TIMEOUT":    "30s",
		"PGCDC_EVENTS_VALUE_SCHEMAS":     fmt.Sprint(valueSchemas),
		"PGCDC_LOG_PROGRESS_INTERVAL":    "5s",
	}
	for k, v := range o.optional {
		vars[k] = v
	}
	for k, v := range o.pgcdcEnv {
		vars[k] = v
	}
	bin := o.pgcdcBin
	for k, v := range extra {
		if k == envVariantBin {
			bin = v
			continue
		}
		vars[k] = v
	}
	cmd := exec.Command(bin, "run")
	cmd.Env = procEnv(vars)
	return runSpec{label: label, cmd: cmd, slot: slot, target: target, rows: rows, readyLine: `"message":"streaming"`, countRequests: true}
}

// envVariantBin in a variant's environment names another pgcdc binary for that variant (an A/B
// of two builds within one run); it is not passed on.
const envVariantBin = "BENCH_PGCDC_BIN"

// procEnv is the environment of a pgcdc process: this one's without any PGCDC_* variable (a stray
// one would change the run), plus vars.
func procEnv(vars map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if _, set := vars[name]; !set && !strings.HasPrefix(name, "PGCDC_") {
			env = append(env, kv)
		}
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+vars[k])
	}
	return env
}

// finishPgcdcRun checks the topic holds exactly the expected records, records their size, and
// deletes the topic unless asked to keep it.
func finishPgcdcRun(ctx context.Context, o *options, s *servers, r *Run, topic string, valueSchemas bool) error {
	vs := valueSchemas
	r.ValueSchemas = &vs
	r.Topic = topic
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	n, avg, err := topicStats(cctx, s.brokers, topic)
	if err != nil {
		return fmt.Errorf("%s: %w", r.Label, err)
	}
	r.TopicRecords, r.AvgRecordBytes = n, avg
	if !o.keepTopics {
		deleteTopic(cctx, s.brokers, topic)
	}
	if n != r.Rows {
		return fmt.Errorf("%s: topic %s holds %d records, want %d", r.Label, topic, n, r.Rows)
	}
	return nil
}

// optionalSettings are pgcdc settings the benchmark sets when the binary knows them (an unknown
// PGCDC_* variable is an error): no initial snapshot (the consumers must read the same WAL, not the
// table), and the metrics endpoint on a free loopback port instead of the shared default port.
var optionalSettings = map[string]string{
	"PGCDC_SNAPSHOT_MODE":  "no_data",
	"PGCDC_METRICS_LISTEN": "127.0.0.1:0",
}

// probeSettings returns the optional settings bin accepts: `pgcdc run` with only them set fails
// validation at once, naming every unknown variable.
func probeSettings(ctx context.Context, bin string) (map[string]string, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, bin, "run")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PGCDC_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range optionalSettings {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "invalid configuration") {
		return nil, fmt.Errorf("probe %s: unexpected output:\n%s", bin, out)
	}
	ok := map[string]string{}
	for k, v := range optionalSettings {
		if !strings.Contains(string(out), "environment variable "+k+":") {
			ok[k] = v
		}
	}
	return ok, nil
}
