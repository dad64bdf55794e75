package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
)

// KafkaOptions configures a broker started by StartKafka.
type KafkaOptions struct {
	// Settings are extra server.properties entries over the defaults.
	Settings map[string]string
	// HeapMB is the JVM heap (-Xmx); default 512.
	HeapMB int
	// Port is the PLAINTEXT listener's port; 0 picks a free one. Set it when Settings name listeners
	// of their own (listeners, advertised.listeners), which must include PLAINTEXT on this port.
	Port int
	// JVMOptions are extra java options for the broker (e.g. -Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=...).
	JVMOptions []string
	// FormatArgs are extra arguments of the storage format (e.g. --add-scram 'SCRAM-SHA-512=[name=u,password=p]').
	FormatArgs []string
}

// Kafka is an Apache Kafka node (KRaft) on 127.0.0.1: a combined broker+controller started by
// StartKafka, or one broker or the controller of a KafkaCluster. Its ports and log directory survive
// Stop/Start.
type Kafka struct {
	Port     int // PLAINTEXT listener (0 on a controller-only node)
	CtrlPort int // CONTROLLER listener (0 on a broker-only node)
	NodeID   int // node.id
	base     string
	libs     string
	heapMB   int
	proc     *process

	jvmOptions []string
}

// StartKafka formats a new KRaft log directory and starts a combined broker+controller on free
// loopback ports, returning once the broker answers a Metadata request.
func StartKafka(ctx context.Context, opts KafkaOptions) (*Kafka, error) {
	libs, err := KafkaLibs()
	if err != nil {
		return nil, err
	}
	base, err := os.MkdirTemp("", "pgcdc-kafka-")
	if err != nil {
		return nil, err
	}
	k := &Kafka{NodeID: 1, base: base, libs: libs, heapMB: opts.HeapMB, Port: opts.Port, jvmOptions: opts.JVMOptions}
	if k.heapMB == 0 {
		k.heapMB = 512
	}
	if err := k.formatCombined(opts.Settings, opts.FormatArgs); err != nil {
		os.RemoveAll(base)
		return nil, err
	}
	if err := k.Start(ctx); err != nil {
		os.RemoveAll(base)
		return nil, err
	}
	return k, nil
}

func javaBin() string {
	if home := os.Getenv("JAVA_HOME"); home != "" {
		return filepath.Join(home, "bin", "java")
	}
	return "java"
}

func (k *Kafka) propsPath() string { return filepath.Join(k.base, "server.properties") }
func (k *Kafka) logPath() string   { return filepath.Join(k.base, "kafka.log") }

// KafkaSettings returns the server.properties the test brokers use, without the listener addresses
// and log directory (which StartKafka chooses): a single combined broker+controller in KRaft mode.
// docker-compose.yml configures its broker the same way (a test checks it).
func KafkaSettings() map[string]string {
	return map[string]string{
		"process.roles":                                    "broker,controller",
		"node.id":                                          "1",
		"controller.listener.names":                        "CONTROLLER",
		"listener.security.protocol.map":                   "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
		"num.partitions":                                   "1",
		"auto.create.topics.enable":                        "false",
		"offsets.topic.replication.factor":                 "1",
		"offsets.topic.num.partitions":                     "1",
		"transaction.state.log.replication.factor":         "1",
		"transaction.state.log.min.isr":                    "1",
		"share.coordinator.state.topic.replication.factor": "1",
		"share.coordinator.state.topic.min.isr":            "1",
		"group.initial.rebalance.delay.ms":                 "0",
		"log.flush.interval.messages":                      "9223372036854775807",
	}
}

func (k *Kafka) formatCombined(settings map[string]string, formatArgs []string) error {
	var err error
	if k.Port == 0 {
		if k.Port, err = freePort(); err != nil {
			return err
		}
	}
	if k.CtrlPort, err = freePort(); err != nil {
		return err
	}
	props := KafkaSettings()
	props["listeners"] = fmt.Sprintf("PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", k.Port, k.CtrlPort)
	props["advertised.listeners"] = fmt.Sprintf("PLAINTEXT://127.0.0.1:%d", k.Port)
	props["controller.quorum.bootstrap.servers"] = fmt.Sprintf("127.0.0.1:%d", k.CtrlPort)
	for key, v := range settings {
		props[key] = v
	}
	return k.format(props, "--standalone", formatArgs...)
}

// format writes the node's server.properties (with its log directory) and formats its KRaft storage;
// quorum is StorageTool's quorum flag: --standalone for a controller that forms the quorum alone,
// --no-initial-controllers for a broker that joins an existing one. formatArgs are extra arguments
// (e.g. --add-scram).
func (k *Kafka) format(props map[string]string, quorum string, formatArgs ...string) error {
	props["log.dirs"] = filepath.Join(k.base, "data")
	keys := make([]string, 0, len(props))
	for key := range props {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, key := range keys {
		fmt.Fprintf(&b, "%s=%s\n", key, props[key])
	}
	if err := os.WriteFile(k.propsPath(), []byte(b.String()), 0o644); err != nil {
		return err
	}
	args := append([]string{"-Xmx256m", "-cp", filepath.Join(k.libs, "*"), "kafka.tools.StorageTool",
		"format", "-t", "pgcdc-test-cluster-0001", "-c", k.propsPath(), quorum}, formatArgs...)
	cmd := exec.Command(javaBin(), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := runQuiet(cmd); err != nil {
		return fmt.Errorf("format KRaft storage: %w", err)
	}
	return nil
}

// Start starts the broker (again) and waits until it answers a Metadata request.
func (k *Kafka) Start(ctx context.Context) error {
	if k.proc != nil && !k.proc.exited() {
		return errors.New("Kafka is already running")
	}
	heap := fmt.Sprintf("-Xmx%dm", k.heapMB)
	args := append([]string{heap, fmt.Sprintf("-Xms%dm", min(128, k.heapMB)), "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Djava.awt.headless=true", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"}, k.jvmOptions...)
	args = append(args, "-cp", filepath.Join(k.libs, "*"), "kafka.Kafka", k.propsPath())
	cmd := command(nil, javaBin(), args...)
	p, err := startProcess(cmd, k.logPath())
	if err != nil {
		return err
	}
	k.proc = p
	if err := k.waitReady(ctx, 3*time.Minute); err != nil { // generous: a shared, loaded machine
		p.stop(syscall.SIGKILL, 5*time.Second)
		return err
	}
	return nil
}

func (k *Kafka) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var lastErr error
	for {
		if k.proc.exited() {
			return fmt.Errorf("Kafka exited during start-up: %v\n%s", k.proc.err, tailFile(k.logPath(), 3000))
		}
		lastErr = k.ping(ctx, 2*time.Second)
		if lastErr == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("Kafka on %s not ready after %s: %v\n%s", k.Addr(), limit, lastErr, tailFile(k.logPath(), 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ping checks that the node serves: a broker answers a Metadata request that lists itself, a
// controller-only node answers ApiVersions on its controller listener.
func (k *Kafka) ping(ctx context.Context, timeout time.Duration) error {
	if k.Port == 0 {
		return apiVersionsPing(ctx, fmt.Sprintf("127.0.0.1:%d", k.CtrlPort), timeout)
	}
	return metadataPing(ctx, k.Addr(), k.NodeID, timeout)
}

// rawConn dials addr for one raw request: the connection's deadline is timeout from now. Close it
// with the returned function.
func rawConn(ctx context.Context, addr string, timeout time.Duration) (*kafka.Conn, func(), error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	conn, err := kafka.DialContext(ctx, "tcp", addr)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	return conn, func() { conn.Close(); cancel() }, nil
}

// apiVersionsPing sends an ApiVersions request on a new connection.
func apiVersionsPing(ctx context.Context, addr string, timeout time.Duration) error {
	conn, done, err := rawConn(ctx, addr, timeout)
	if err != nil {
		return err
	}
	defer done()
	_, err = conn.ApiVersions()
	return err
}

// metadataPing sends a real Metadata request on a new connection (kafka.Client would answer from
// its transport's metadata cache) and checks that broker self (its node.id) and a controller are
// listed: a KRaft broker lists only the brokers the controller has unfenced.
func metadataPing(ctx context.Context, addr string, self int, timeout time.Duration) error {
	conn, done, err := rawConn(ctx, addr, timeout)
	if err != nil {
		return err
	}
	defer done()
	brokers, err := conn.Brokers()
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(brokers, func(b kafka.Broker) bool { return b.ID == self }) {
		return fmt.Errorf("metadata does not list broker %d yet (lists %d brokers)", self, len(brokers))
	}
	if _, err := conn.Controller(); err != nil {
		return fmt.Errorf("no controller yet: %w", err)
	}
	return nil
}

// Addr is the broker's bootstrap address.
func (k *Kafka) Addr() string { return fmt.Sprintf("127.0.0.1:%d", k.Port) }

// PID is the broker JVM's process id (changes on every Start).
func (k *Kafka) PID() int { return k.proc.pid() }

// Stop shuts the broker down cleanly (SIGTERM), killing it if it takes longer than 30 s.
func (k *Kafka) Stop() {
	if k.proc != nil {
		_ = k.proc.signal(syscall.SIGCONT) // a paused JVM cannot handle SIGTERM
		k.proc.stop(syscall.SIGTERM, 30*time.Second)
	}
}

// Kill ends the broker with SIGKILL.
func (k *Kafka) Kill() {
	if k.proc != nil {
		k.proc.stop(syscall.SIGKILL, 10*time.Second)
	}
}

// Restart stops the broker cleanly and starts it again on the same ports and log directory.
func (k *Kafka) Restart(ctx context.Context) error {
	k.Stop()
	return k.Start(ctx)
}

// Pause freezes the broker's JVM (SIGSTOP): connections stay open, nothing is answered.
func (k *Kafka) Pause() error { return k.proc.signal(syscall.SIGSTOP) }

// Resume thaws a paused broker (SIGCONT).
func (k *Kafka) Resume() error { return k.proc.signal(syscall.SIGCONT) }

// Close stops the broker and removes its files.
func (k *Kafka) Close() {
	if k.proc != nil {
		_ = k.proc.signal(syscall.SIGCONT)
		k.proc.stop(syscall.SIGKILL, 10*time.Second)
	}
	os.RemoveAll(k.base)
}

// Log returns the end of the broker log.
func (k *Kafka) Log() string { return tailFile(k.logPath(), 5000) }
