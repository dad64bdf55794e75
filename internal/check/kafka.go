package check

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
)

// topicSettings are the settings of a topic that decide whether acknowledged events survive a broker
// loss and whether the topic keeps the history needed to rebuild a downstream system.
type topicSettings struct {
	Replication    int
	MinISR         int
	CleanupPolicy  string
	RetentionMs    int64 // -1: forever
	RetentionBytes int64 // -1: unbounded
	MaxMessage     int64 // max.message.bytes: the largest record batch the topic accepts
}

// topicConfigNames are read from every existing topic.
var topicConfigNames = []string{"min.insync.replicas", "cleanup.policy", "retention.ms", "retention.bytes", "max.message.bytes"}

func checkKafka(ctx context.Context, cfg config.Config, src source, r *Report) {
	tables := src.tables
	k := cfg.Kafka
	kc := checkKafkaSecurity(ctx, k, r)
	if kc == nil {
		return
	}
	transport := kc.Transport()
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kc.Addr(), Timeout: 15 * time.Second, Transport: transport}
	topics := make([]string, 0, len(tables))
	byTopic := map[string]pgsource.Table{}
	for _, t := range tables {
		name := cfg.Events.RoutedTopic(event.SanitizeTopic(k.TopicPrefix + "." + t.Schema + "." + t.Name)) // after the topic routers
		topics = append(topics, name)
		byTopic[name] = t
	}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		r.add(Fail, "kafka", "check kafka.brokers, that the brokers run and are reachable from here, and that their advertised.listeners resolve from here",
			"no broker of %v answered: %v", k.Brokers, err)
		return
	}
	r.add(OK, "kafka", "", "connected to cluster %s: %s", md.ClusterID, plural(len(md.Brokers), "broker"))
	if k.Acks != "all" {
		r.add(Warn, "kafka", "set kafka.acks: all",
			"kafka.acks is %s: Kafka acknowledges before the in-sync replicas have the record, so acknowledged events can be lost when a leader fails", k.Acks)
	}
	broker := readBrokerDefaults(ctx, client, md)

	var existing, missing []string
	parts := map[string]kafka.Topic{}
	for _, t := range md.Topics {
		if t.Error != nil {
			missing = append(missing, t.Name)
			continue
		}
		existing = append(existing, t.Name)
		parts[t.Name] = t
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		if !k.CreateTopics {
			r.add(Fail, "topic", "create them (kafka-topics.sh --create --topic ... --replication-factor 3) or set kafka.create_topics: true",
				"topics do not exist and kafka.create_topics is false: %s", strings.Join(missing, ", "))
		} else if k.ReplicationFactor > len(md.Brokers) {
			r.add(Fail, "topic", fmt.Sprintf("set kafka.replication_factor to at most %d, or add brokers", len(md.Brokers)),
				"kafka.replication_factor is %d but the cluster has %s: creating the topics would fail", k.ReplicationFactor, plural(len(md.Brokers), "broker"))
		} else {
			planned := broker
			planned.Replication = k.ReplicationFactor
			applyTopicConfig(&planned, k.TopicConfig)
			r.add(Info, "topic", "", "pgcdc creates at start (%s, replication factor %d): %s", plural(k.Partitions, "partition"), k.ReplicationFactor, strings.Join(missing, ", "))
			judgeTopic(r, fmt.Sprintf("topics pgcdc creates (kafka.replication_factor %d, kafka.topic_config %v)", k.ReplicationFactor, k.TopicConfig), "", planned, k, true)
			judgeKeys(r, missing, byTopic, planned, cfg)
			for _, name := range missing {
				if rs, ok := src.rows[byTopic[name].String()]; ok {
					judgeRowSize(r, name, byTopic[name], rs, planned.MaxMessage, cfg.Events.ValueSchemas,
						fmt.Sprintf("set kafka.topic_config: {max.message.bytes: %d} (and the brokers' message.max.bytes, replica.fetch.max.bytes, the consumers' max.partition.fetch.bytes at least as high), or shrink the rows", suggestMaxMessage(rs, cfg.Events.ValueSchemas)))
				}
			}
		}
	}
	if len(existing) == 0 {
		return
	}
	sort.Strings(existing)
	configs, err := readTopicConfigs(ctx, client, existing)
	if err != nil {
		r.add(Warn, "topic", "grant DescribeConfigs on the topics to this client (or check them by hand)", "cannot read topic configs: %v", err)
		return
	}
	for _, name := range existing {
		t := parts[name]
		s := broker
		underReplicated := 0
		for _, p := range t.Partitions {
			if len(p.Replicas) > s.Replication {
				s.Replication = len(p.Replicas)
			}
			if len(p.Isr) < len(p.Replicas) {
				underReplicated++
			}
		}
		applyTopicConfig(&s, configs[name])
		r.add(OK, "topic", "", "%s exists: %s, replication factor %d, min.insync.replicas %d, cleanup.policy %s", name, plural(len(t.Partitions), "partition"), s.Replication, s.MinISR, s.CleanupPolicy)
		if underReplicated > 0 {
			r.add(Warn, "topic", "bring the missing brokers back (kafka-topics.sh --describe --under-replicated-partitions)",
				"%s: %d of %d partitions are under-replicated (fewer in-sync replicas than replicas)", name, underReplicated, len(t.Partitions))
		}
		judgeTopic(r, "topic "+name, name, s, k, false)
		judgeKeys(r, []string{name}, byTopic, s, cfg)
		if rs, ok := src.rows[byTopic[name].String()]; ok {
			judgeRowSize(r, name, byTopic[name], rs, s.MaxMessage, cfg.Events.ValueSchemas,
				fmt.Sprintf("kafka-configs.sh --bootstrap-server %s --alter --entity-type topics --entity-name %s --add-config max.message.bytes=%d (and the consumers' max.partition.fetch.bytes at least as high), or shrink the rows", k.Brokers[0], name, suggestMaxMessage(rs, cfg.Events.ValueSchemas)))
		}
	}
}

// suggestMaxMessage is a max.message.bytes with room for rs's largest event: the estimate plus a
// quarter, rounded up to a MiB.
func suggestMaxMessage(rs rowSize, valueSchemas bool) int64 {
	n := rs.eventEstimate(valueSchemas) * 5 / 4
	return (n + 1<<20 - 1) / (1 << 20) * (1 << 20)
}

// readBrokerDefaults reads the settings a topic inherits from the cluster (min.insync.replicas and
// message.max.bytes; Kafka's defaults, 1 and 1048588, when they cannot be read).
func readBrokerDefaults(ctx context.Context, client *kafka.Client, md *kafka.MetadataResponse) topicSettings {
	s := topicSettings{MinISR: 1, CleanupPolicy: "delete", RetentionMs: -1, RetentionBytes: -1, MaxMessage: 1048588}
	if len(md.Brokers) == 0 {
		return s
	}
	res, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeBroker, ResourceName: strconv.Itoa(md.Brokers[0].ID), ConfigNames: []string{"min.insync.replicas", "message.max.bytes"},
	}}})
	if err != nil {
		return s
	}
	for _, rs := range res.Resources {
		for _, e := range rs.ConfigEntries {
			n, err := strconv.ParseInt(e.ConfigValue, 10, 64)
			if err != nil {
				continue
			}
			switch e.ConfigName {
			case "min.insync.replicas":
				s.MinISR = int(n)
			case "message.max.bytes":
				s.MaxMessage = n
			}
		}
	}
	return s
}

func readTopicConfigs(ctx context.Context, client *kafka.Client, topics []string) (map[string]map[string]string, error) {
	req := &kafka.DescribeConfigsRequest{}
	for _, t := range topics {
		req.Resources = append(req.Resources, kafka.DescribeConfigRequestResource{ResourceType: kafka.ResourceTypeTopic, ResourceName: t, ConfigNames: topicConfigNames})
	}
	res, err := client.DescribeConfigs(ctx, req)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]string{}
	for _, rs := range res.Resources {
		if rs.Error != nil {
			return nil, fmt.Errorf("topic %s: %w", rs.ResourceName, rs.Error)
		}
		m := map[string]string{}
		for _, e := range rs.ConfigEntries {
			m[e.ConfigName] = e.ConfigValue
		}
		out[rs.ResourceName] = m
	}
	return out, nil
}

func applyTopicConfig(s *topicSettings, m map[string]string) {
	if v, ok := m["min.insync.replicas"]; ok {
		if n, err := strconv.Atoi(v); err == nil {
			s.MinISR = n
		}
	}
	if v, ok := m["cleanup.policy"]; ok && v != "" {
		s.CleanupPolicy = strings.ReplaceAll(v, " ", "")
	}
	if v, ok := m["retention.ms"]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			s.RetentionMs = n
		}
	}
	if v, ok := m["max.message.bytes"]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			s.MaxMessage = n
		}
	}
	if v, ok := m["retention.bytes"]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			s.RetentionBytes = n
		}
	}
}

func hasPolicy(policy, p string) bool {
	for _, x := range strings.Split(policy, ",") {
		if x == p {
			return true
		}
	}
	return false
}

// judgeTopic adds the durability and retention findings for one topic (or the planned settings of
// the topics pgcdc will create, when planned).
func judgeTopic(r *Report, what, name string, s topicSettings, k config.KafkaConfig, planned bool) {
	alter := func(kv string) string {
		if planned {
			return "kafka.topic_config: " + strings.Replace(kv, "=", ": ", 1)
		}
		return fmt.Sprintf("kafka-configs.sh --bootstrap-server %s --alter --entity-type topics --entity-name %s --add-config %s", k.Brokers[0], name, kv)
	}
	switch {
	case s.Replication <= 1:
		fix := "recreate the topic with --replication-factor 3, or raise it with kafka-reassign-partitions.sh"
		if planned {
			fix = "set kafka.replication_factor: 3 (on a cluster of 3 or more brokers)"
		}
		r.add(Warn, "topic", fix,
			"%s: replication factor 1: an acknowledged event exists on one broker only and is lost with that broker's disk", what)
	case s.MinISR <= 1:
		r.add(Warn, "topic", alter("min.insync.replicas=2"),
			"%s: min.insync.replicas %d: with acks=all Kafka acknowledges once the leader alone has the record; losing that broker loses acknowledged events", what, s.MinISR)
	case s.MinISR >= s.Replication:
		r.add(Warn, "topic", alter(fmt.Sprintf("min.insync.replicas=%d", s.Replication-1)),
			"%s: min.insync.replicas %d with replication factor %d: one broker down stops every write (pgcdc stalls until it returns)", what, s.MinISR, s.Replication)
	}
	if !hasPolicy(s.CleanupPolicy, "delete") {
		if hasPolicy(s.CleanupPolicy, "compact") {
			r.add(Info, "topic", "", "%s: cleanup.policy compact keeps the latest event per key: enough to rebuild state, not the history of changes", what)
		}
		return
	}
	if s.RetentionMs >= 0 {
		r.add(Warn, "topic", alter("retention.ms=-1")+" (keep everything), or cleanup.policy=compact (keep the latest event per key)",
			"%s: retention.ms %d (%s): older events are deleted, so the topic can no longer rebuild a downstream system from scratch", what, s.RetentionMs, time.Duration(s.RetentionMs)*time.Millisecond)
	}
	if s.RetentionBytes >= 0 {
		r.add(Warn, "topic", alter("retention.bytes=-1")+" (keep everything), or cleanup.policy=compact",
			"%s: retention.bytes %d per partition: older events are deleted once it is reached, so the topic can no longer rebuild a downstream system from scratch", what, s.RetentionBytes)
	}
}

// judgeKeys refuses compaction for records with null keys: a compacted topic rejects them.
func judgeKeys(r *Report, topics []string, byTopic map[string]pgsource.Table, s topicSettings, cfg config.Config) {
	if !hasPolicy(s.CleanupPolicy, "compact") {
		return
	}
	for _, name := range topics {
		t := byTopic[name]
		if !t.HasKey && !(t.Identity == 'i' && t.HasIdentIdx) {
			r.add(Fail, "topic", fmt.Sprintf("add a primary key to %s, or use cleanup.policy=delete for %s", t, name),
				"%s is compacted but table %s has no key: its events have a null key, which a compacted topic rejects", name, t)
		}
	}
	if cfg.Events.Truncate && len(topics) > 0 {
		r.add(Fail, "topic", "set events.truncate: false, or use cleanup.policy=delete",
			"events.truncate is on and %s is compacted: truncate events have a null key, which a compacted topic rejects", topics[0])
	}
}
