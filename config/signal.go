package config

import "strings"

// SignalConfig configures the signal channels: how a running pgcdc is told to snapshot tables
// incrementally (or blocking), to stop, pause or resume that, or to log a line, in Debezium's
// signal formats (docs/incremental.md).
type SignalConfig struct {
	// Table is the signal table, "schema.table" (Debezium's signal.data.collection): rows inserted
	// into it (id, type, data) come through the replication stream and are acted on in WAL order.
	// pgcdc creates it when missing (when its role may) and keeps it in the publication; its rows
	// are never published. "" (default): no signal table.
	Table string `yaml:"table"`
	// KafkaTopic is the Kafka signal topic (Debezium's signal.kafka.topic): records keyed by
	// kafka.topic_prefix with the value {"id", "type", "data"} on its partition 0. "" (default):
	// none.
	KafkaTopic string `yaml:"kafka_topic"`
}

// TableName splits Table into its schema and name.
func (s SignalConfig) TableName() (schema, name string) {
	schema, name, _ = strings.Cut(s.Table, ".")
	return schema, name
}

func (s SignalConfig) validate(v *validator) {
	if s.Table != "" {
		if msg := checkTableName(s.Table); msg != "" {
			v.add("signal.table", "%s", msg)
		}
	}
	if strings.ContainsAny(s.KafkaTopic, " /\\,") || len(s.KafkaTopic) > 249 {
		v.add("signal.kafka_topic", "%q is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)", s.KafkaTopic)
	}
}
