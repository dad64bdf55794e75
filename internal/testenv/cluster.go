package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
)

// KafkaClusterOptions configures a cluster started by StartKafkaCluster.
type KafkaClusterOptions struct {
	// Brokers is the number of brokers; default 3.
	Brokers int
	// Settings are extra server.properties entries of every broker, over ClusterBrokerSettings.
	Settings map[string]string
	// BrokerHeapMB and ControllerHeapMB are the JVM heaps (-Xmx); defaults 320 and 160.
	BrokerHeapMB, ControllerHeapMB int
}

// KafkaCluster is a Kafka cluster on 127.0.0.1 in KRaft mode whose controller quorum runs apart from
// the brokers: one dedicated controller node and n brokers (node ids 1..n). Killing brokers therefore
// never costs the quorum: with two of three brokers down, partitions fall below min.insync.replicas
// and refuse acks=all writes, while the controller keeps electing leaders. Topics get replication
// factor 3 and min.insync.replicas 2 by default (ClusterBrokerSettings).
//
// Each node is a *Kafka with the single broker's controls: Stop (SIGTERM: a controlled shutdown that
// moves partition leadership away first), Kill, Start, Pause/Resume (SIGSTOP/SIGCONT).
type KafkaCluster struct {
	Controller *Kafka
	Brokers    []*Kafka // Brokers[i].NodeID == i+1
}

// ClusterBrokerSettings returns the server.properties the brokers of a KafkaCluster use, without
// node.id, listeners, the quorum address and the log directory: a broker-only node, replicated
// defaults (replication factor 3, min.insync.replicas 2, also for the internal topics), few threads
// and one partition per internal topic to spare a small machine, a preferred-leader rebalance every
// 15 s so leadership moves back after a restart (as in a production cluster, only sooner), heartbeats
// every second (the controller fences a silent broker after 6 s rather than 9) and 64 MiB segments
// (bounding the log recovery after a kill).
func ClusterBrokerSettings(brokers int) map[string]string {
	rf := strconv.Itoa(min(3, brokers))
	isr := strconv.Itoa(min(2, brokers))
	return map[string]string{
		"process.roles":                                    "broker",
		"controller.listener.names":                        "CONTROLLER",
		"inter.broker.listener.name":                       "PLAINTEXT",
		"listener.security.protocol.map":                   "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
		"min.insync.replicas":                              isr,
		"auto.create.topics.enable":                        "false",
		"offsets.topic.replication.factor":                 rf,
		"offsets.topic.num.partitions":                     "1",
		"transaction.state.log.replication.factor":         rf,
		"transaction.state.log.min.isr":                    isr,
		"transaction.state.log.num.partitions":             "1",
		"share.coordinator.state.topic.replication.factor": rf,
		"share.coordinator.state.topic.min.isr":            isr,
		"share.coordinator.state.topic.num.partitions":     "1",
		"group.initial.rebalance.delay.ms":                 "0",
		"log.flush.interval.messages":                      "9223372036854775807",
		"num.network.threads":                              "2",
		"num.io.threads":                                   "2",
		"background.threads":                               "2",
		"num.replica.fetchers":                             "1",
		"log.cleaner.threads":                              "1",
		"leader.imbalance.check.interval.seconds":          "15",
		"broker.heartbeat.interval.ms":                     "1000",
		"log.segment.bytes":                                "67108864",
	}
}

// controllerSettings is the dedicated controller's server.properties, without its listener, quorum
// address and log directory. Kafka 4's controller (eligible leader replicas, KIP-966) writes its own
// min.insync.replicas as the cluster-wide default, which wins over the brokers' static setting: it
// must be set here too.
func controllerSettings(brokers int) map[string]string {
	return map[string]string{
		"min.insync.replicas":            strconv.Itoa(min(2, brokers)),
		"default.replication.factor":     strconv.Itoa(min(3, brokers)),
		"num.partitions":                 "1",
		"broker.session.timeout.ms":      "6000",
		"process.roles":                  "controller",
		"node.id":                        "0",
		"controller.listener.names":      "CONTROLLER",
		"listener.security.protocol.map": "CONTROLLER:PLAINTEXT",
		"num.io.threads":                 "2",
		"num.network.threads":            "1",
		"background.threads":             "2",
	}
}

// StartKafkaCluster formats and starts the controller, then the brokers (in parallel), and returns
// once every broker lists all of them in its metadata.
func StartKafkaCluster(ctx context.Context, opts KafkaClusterOptions) (*KafkaCluster, error) {
	if opts.Brokers <= 0 {
		opts.Brokers = 3
	}
	if opts.BrokerHeapMB <= 0 {
		opts.BrokerHeapMB = 320
	}
	if opts.ControllerHeapMB <= 0 {
		opts.ControllerHeapMB = 160
	}
	libs, err := KafkaLibs()
	if err != nil {
		return nil, err
	}
	c := &KafkaCluster{}
	newNode := func(id, heap int) (*Kafka, error) {
		base, err := os.MkdirTemp("", fmt.Sprintf("pgcdc-kafka-%d-", id))
		if err != nil {
			return nil, err
		}
		return &Kafka{NodeID: id, base: base, libs: libs, heapMB: heap}, nil
	}
	if c.Controller, err = newNode(0, opts.ControllerHeapMB); err != nil {
		return nil, err
	}
	if c.Controller.CtrlPort, err = freePort(); err != nil {
		c.Close()
		return nil, err
	}
	quorum := fmt.Sprintf("127.0.0.1:%d", c.Controller.CtrlPort)
	props := controllerSettings(opts.Brokers)
	props["listeners"] = "CONTROLLER://" + quorum
	props["controller.quorum.bootstrap.servers"] = quorum
	if err := c.Controller.format(props, "--standalone"); err != nil {
		c.Close()
		return nil, err
	}
	for id := 1; id <= opts.Brokers; id++ {
		b, err := newNode(id, opts.BrokerHeapMB)
		if err == nil {
			c.Brokers = append(c.Brokers, b)
			b.Port, err = freePort()
		}
		if err != nil {
			c.Close()
			return nil, err
		}
		props := ClusterBrokerSettings(opts.Brokers)
		props["node.id"] = strconv.Itoa(id)
		props["listeners"] = fmt.Sprintf("PLAINTEXT://127.0.0.1:%d", b.Port)
		props["advertised.listeners"] = fmt.Sprintf("PLAINTEXT://127.0.0.1:%d", b.Port)
		props["controller.quorum.bootstrap.servers"] = quorum
		for k, v := range opts.Settings {
			props[k] = v
		}
		if err := b.format(props, "--no-initial-controllers"); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.Controller.Start(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("controller: %w", err)
	}
	errs := make([]error, len(c.Brokers))
	var wg sync.WaitGroup
	for i, b := range c.Brokers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Start(ctx); err != nil {
				errs[i] = fmt.Errorf("broker %d: %w", b.NodeID, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.WaitHealthy(ctx, 2*time.Minute); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Addrs returns the bootstrap addresses of all brokers.
func (c *KafkaCluster) Addrs() []string {
	out := make([]string, len(c.Brokers))
	for i, b := range c.Brokers {
		out[i] = b.Addr()
	}
	return out
}

// Broker returns the broker with node.id id (nil when there is none).
func (c *KafkaCluster) Broker(id int) *Kafka {
	if id < 1 || id > len(c.Brokers) {
		return nil
	}
	return c.Brokers[id-1]
}

// Close stops every node and removes its files.
func (c *KafkaCluster) Close() {
	var wg sync.WaitGroup
	for _, b := range c.Brokers {
		wg.Add(1)
		go func() { defer wg.Done(); b.Close() }()
	}
	wg.Wait()
	if c.Controller != nil {
		c.Controller.Close()
	}
}

// running reports whether the broker's process runs and is not frozen.
func (k *Kafka) running() bool {
	if k.proc == nil || k.proc.exited() {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", k.proc.pid()))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'T' && s[i+2] != 'Z'
}

// PartitionState is one partition as the cluster's metadata describes it.
type PartitionState struct {
	Topic     string
	Partition int
	Leader    int // node id; -1 when the partition has no leader
	Replicas  []int
	ISR       []int
}

// Partitions reads the state of every partition of topics (all topics when none are named) with a
// raw Metadata request to a running broker (never a cached answer).
func (c *KafkaCluster) Partitions(ctx context.Context, topics ...string) ([]PartitionState, error) {
	var last error = errors.New("no broker is running")
	for _, b := range c.Brokers {
		if !b.running() {
			continue
		}
		parts, err := readPartitions(ctx, b.Addr(), topics)
		if err == nil {
			return parts, nil
		}
		last = fmt.Errorf("broker %d: %w", b.NodeID, err)
	}
	return nil, last
}

func readPartitions(ctx context.Context, addr string, topics []string) ([]PartitionState, error) {
	conn, done, err := rawConn(ctx, addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer done()
	parts, err := conn.ReadPartitions(topics...)
	if err != nil {
		return nil, err
	}
	ids := func(bs []kafka.Broker) []int {
		out := make([]int, len(bs))
		for i, b := range bs {
			out[i] = b.ID
		}
		sort.Ints(out)
		return out
	}
	out := make([]PartitionState, 0, len(parts))
	for _, p := range parts {
		ps := PartitionState{Topic: p.Topic, Partition: p.ID, Leader: -1, Replicas: ids(p.Replicas), ISR: ids(p.Isr)}
		if p.Leader.Host != "" {
			ps.Leader = p.Leader.ID
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out, nil
}

// Leader returns the node id of the leader of one partition (-1 while it has none).
func (c *KafkaCluster) Leader(ctx context.Context, topic string, partition int) (int, error) {
	parts, err := c.Partitions(ctx, topic)
	if err != nil {
		return 0, err
	}
	for _, p := range parts {
		if p.Partition == partition {
			return p.Leader, nil
		}
	}
	return 0, fmt.Errorf("topic %s has no partition %d", topic, partition)
}

// Healthy returns nil when every broker runs and is listed in the metadata, and every partition has a
// leader and all its replicas in sync; otherwise what is not yet so.
func (c *KafkaCluster) Healthy(ctx context.Context) error {
	for _, b := range c.Brokers {
		if !b.running() {
			return fmt.Errorf("broker %d is not running", b.NodeID)
		}
		if err := metadataPing(ctx, b.Addr(), b.NodeID, 5*time.Second); err != nil {
			return fmt.Errorf("broker %d: %w", b.NodeID, err)
		}
	}
	parts, err := c.Partitions(ctx)
	if err != nil {
		return err
	}
	for _, p := range parts {
		if p.Leader < 0 || !slices.Equal(p.ISR, p.Replicas) {
			return fmt.Errorf("%s partition %d: leader %d, replicas %v, in sync %v", p.Topic, p.Partition, p.Leader, p.Replicas, p.ISR)
		}
	}
	return nil
}

// WaitHealthy waits up to limit until Healthy returns nil.
func (c *KafkaCluster) WaitHealthy(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		err := c.Healthy(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("Kafka cluster not healthy after %s: %w", limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// CreateTopic creates topic with the given partitions, replication factor 3 (the brokers' default)
// and the given configs, and waits until every partition has a leader and a full ISR.
func (c *KafkaCluster) CreateTopic(ctx context.Context, topic string, partitions int, configs map[string]string) error {
	client := &kafka.Client{Addr: kafka.TCP(c.Addrs()...), Timeout: 30 * time.Second}
	var entries []kafka.ConfigEntry
	for k, v := range configs {
		entries = append(entries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
	}
	res, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: partitions, ReplicationFactor: min(3, len(c.Brokers)), ConfigEntries: entries,
	}}})
	if err == nil {
		err = res.Errors[topic]
	}
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		parts, err := c.Partitions(ctx, topic)
		ok := err == nil && len(parts) == partitions
		for _, p := range parts {
			ok = ok && p.Leader >= 0 && slices.Equal(p.ISR, p.Replicas) && len(p.Replicas) == min(3, len(c.Brokers))
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topic %s not ready after 1m: %v %v", topic, parts, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// DeleteTopics deletes topics (those that do not exist are ignored).
func (c *KafkaCluster) DeleteTopics(ctx context.Context, topics ...string) error {
	if len(topics) == 0 {
		return nil
	}
	client := &kafka.Client{Addr: kafka.TCP(c.Addrs()...), Timeout: 30 * time.Second}
	res, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: topics})
	if err != nil {
		return err
	}
	for t, e := range res.Errors {
		if e != nil && !errors.Is(e, kafka.UnknownTopicOrPartition) {
			return fmt.Errorf("delete topic %s: %w", t, e)
		}
	}
	return nil
}

// Exited reports whether the node's process has ended (or was never started).
func (k *Kafka) Exited() bool { return k.proc == nil || k.proc.exited() }

// WaitStatus returns how the node's last process ended; false while it runs.
func (k *Kafka) WaitStatus() (syscall.WaitStatus, bool) {
	if k.proc == nil || !k.proc.exited() || k.proc.cmd.ProcessState == nil {
		return 0, false
	}
	ws, ok := k.proc.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ws, ok
}
