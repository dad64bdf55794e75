package config

import (
	"os"
	"path/filepath"
	"time"
)

// Config is the whole pgcdc configuration. Obtain one with Load (or Default
// for tests) and check it with Validate; Load already validates.
type Config struct {
	Postgres  PostgresConfig  `yaml:"postgres"`
	Tables    TablesConfig    `yaml:"tables"`
	Kafka     KafkaConfig     `yaml:"kafka"`
	Events    EventsConfig    `yaml:"events"`
	Log       LogConfig       `yaml:"log"`
	Metrics   MetricsConfig   `yaml:"metrics"`
	Heartbeat HeartbeatConfig `yaml:"heartbeat"`
	Snapshot  SnapshotConfig  `yaml:"snapshot"`
	Deliver   DeliverConfig   `yaml:"deliver"`
	Outbox    OutboxConfig    `yaml:"outbox"`
	Signal    SignalConfig    `yaml:"signal"`
	HA        HAConfig        `yaml:"ha"`
}

// HAConfig runs several pgcdc processes for one slot (as on several hosts): one streams (active),
// the others wait (standby) and take over when it dies or freezes (pkg/lease, docs/operations.md
// "High availability").
type HAConfig struct {
	Enabled bool `yaml:"enabled"` // default false: one process, a second one waits on the slot without a takeover
	// TakeoverAfter is how long the active process's lease heartbeat may be silent before a standby
	// ends its sessions and takes over; default 8s. The heartbeat runs every takeover_after/8.
	TakeoverAfter time.Duration `yaml:"takeover_after"`
	// TransactionalID is the Kafka transactional.id whose producer epoch fences a previous active
	// process: a new active one bumps it before it writes, and the broker then refuses the old one's
	// writes. Default "pgcdc-<kafka.topic_prefix>-<postgres.slot>"; it must differ between
	// connectors that share a Kafka cluster.
	TransactionalID string `yaml:"transactional_id"`
}

// DefaultTakeoverAfter is ha.takeover_after's default.
const DefaultTakeoverAfter = 8 * time.Second

// KafkaTransactionalID returns ha.transactional_id, or its default for the topic prefix and slot.
func (c Config) KafkaTransactionalID() string {
	if c.HA.TransactionalID != "" {
		return c.HA.TransactionalID
	}
	return "pgcdc-" + c.Kafka.TopicPrefix + "-" + c.Postgres.Slot
}

// SnapshotConfig configures the initial snapshot: the rows that exist before streaming starts,
// published as op "r" events (see docs/operations.md, "Snapshots").
type SnapshotConfig struct {
	// Mode says when to snapshot, as Debezium's snapshot.mode: initial (default: when no completed
	// snapshot is recorded for the slot), no_data (never), initial_only (like initial, then exit
	// without streaming), always (at every start), when_needed (like initial, and also when the
	// slot is missing or invalidated: it is then recreated).
	Mode           string `yaml:"mode"`
	Workers        int    `yaml:"workers"`          // parallel readers (connections), default 2, 1..64
	ChunkRows      int    `yaml:"chunk_rows"`       // rows per chunk (key or ctid range), default 100000
	MaxRowsPerSec  int    `yaml:"max_rows_per_sec"` // read rate limit over all workers; 0 (default) = none
	ProgressSchema string `yaml:"progress_schema"`  // schema of the pgcdc_snapshot_progress table, default "public"

	// IncrementalChunkRows is the number of rows an incremental snapshot reads per chunk (window),
	// as Debezium's incremental.snapshot.chunk.size; default 1024.
	IncrementalChunkRows int `yaml:"incremental_chunk_rows"`
	// BackfillNewTables snapshots incrementally the tables that become captured after the slot's
	// tables were snapshotted (a table added to tables.include before a restart, or created while
	// pgcdc runs), so that their existing rows are published too. Default true.
	BackfillNewTables bool `yaml:"backfill_new_tables"`
}

// Publication modes (postgres.publication_mode).
const (
	PublicationFiltered  = "filtered"
	PublicationAllTables = "all_tables"
	PublicationDisabled  = "disabled"
	PublicationNoTables  = "no_tables"
)

// PublicationModeEffective is the publication mode in force: disabled when create_publication is
// false (its older spelling), else publication_mode.
func (p PostgresConfig) PublicationModeEffective() string {
	if !p.CreatePublication {
		return PublicationDisabled
	}
	if p.PublicationMode == "" {
		return PublicationFiltered
	}
	return p.PublicationMode
}

// ManagesPublicationTables reports whether pgcdc adds the captured tables to the publication.
func (p PostgresConfig) ManagesPublicationTables() bool {
	return p.PublicationModeEffective() == PublicationFiltered
}

// Snapshot modes.
const (
	SnapshotInitial     = "initial"
	SnapshotNoData      = "no_data"
	SnapshotInitialOnly = "initial_only"
	SnapshotAlways      = "always"
	SnapshotWhenNeeded  = "when_needed"
)

// SnapshotProgressTable is the table (in snapshot.progress_schema) where pgcdc records snapshot
// progress. Tables of this name are never captured, whatever tables.include says.
const SnapshotProgressTable = "pgcdc_snapshot_progress"

// SlotPositionTable is the table (in snapshot.progress_schema) where pgcdc records the last
// position it confirmed on each slot (package slotrecord). Never captured either.
const SlotPositionTable = "pgcdc_slot_position"

// IncrementalProgressTable is the table (in snapshot.progress_schema) where pgcdc records the
// incremental snapshots' progress (package incremental). Never captured either.
const IncrementalProgressTable = "pgcdc_incremental_snapshot"

// HeartbeatConfig configures heartbeats: a small write at an interval that travels through the
// replication stream, so that the slot keeps advancing and liveness is visible end to end.
type HeartbeatConfig struct {
	Interval    time.Duration `yaml:"interval"`     // default 30s; 0 disables
	ActionQuery string        `yaml:"action_query"` // SQL run at each heartbeat instead of the default pg_logical_emit_message
	Topic       bool          `yaml:"topic"`        // publish Debezium heartbeat records to __debezium-heartbeat.<prefix>
}

// PostgresConfig configures the source database, the replication slot and
// the publication.
type PostgresConfig struct {
	DSN               string `yaml:"dsn"`                // libpq URL or key=value; may contain no password (then Password/PasswordFile)
	Password          string `yaml:"password"`           // normally from env PGCDC_POSTGRES_PASSWORD
	PasswordFile      string `yaml:"password_file"`      // file whose first line (trimmed) is the password
	Slot              string `yaml:"slot"`               // default "pgcdc"; [a-z0-9_]{1,63}
	Publication       string `yaml:"publication"`        // default "pgcdc"; [a-z_][a-z0-9_]{0,62}
	CreateSlot        bool   `yaml:"create_slot"`        // default true
	CreatePublication bool   `yaml:"create_publication"` // default true; false is publication_mode disabled
	// PublicationMode says how the publication is managed, as Debezium's publication.autocreate.mode:
	// filtered (default: a table list kept in step with "tables"), all_tables (FOR ALL TABLES,
	// filtered in pgcdc; needs a superuser), disabled (an administrator manages it), no_tables
	// (created without tables, never changed). See PublicationModeEffective.
	PublicationMode            string        `yaml:"publication_mode"`
	Streaming                  bool          `yaml:"streaming"`                    // protocol v2 streaming of in-progress transactions with a local spool; default false
	SpoolDir                   string        `yaml:"spool_dir"`                    // default filepath.Join(os.TempDir(), "pgcdc-spool-"+Slot)
	SpoolMaxBytes              ByteSize      `yaml:"spool_max_bytes"`              // default 10GiB
	StatusInterval             time.Duration `yaml:"status_interval"`              // default 10s; > 0
	ConnectTimeout             time.Duration `yaml:"connect_timeout"`              // start-up bound, default 30s
	PublicationRefreshInterval time.Duration `yaml:"publication_refresh_interval"` // default 30s; 0 disables

	// TLS of every PostgreSQL connection (replication, catalog, snapshot, heartbeat, check, status),
	// as libpq's keywords of the same names; applied to the DSN by ConnString (security.go).
	SSLMode     string `yaml:"sslmode"`     // "" (as the DSN says; libpq's default prefer) | disable | allow | prefer | require | verify-ca | verify-full
	SSLRootCert string `yaml:"sslrootcert"` // PEM file of the CA(s) that sign the server's certificate; "system": the OS trust store
	SSLCert     string `yaml:"sslcert"`     // client certificate (PEM) for certificate authentication; needs sslkey
	SSLKey      string `yaml:"sslkey"`      // the client certificate's private key (PEM, unencrypted)
	// FailoverSlot creates the slot as a failover slot (PostgreSQL 17+), or turns failover on for an
	// existing one, so that standbys with sync_replication_slots keep a synchronized copy and pgcdc
	// continues from it after a failover (docs/failover.md). Default false.
	FailoverSlot bool `yaml:"failover_slot"`
}

// TablesConfig selects the captured tables.
type TablesConfig struct {
	Include []string `yaml:"include"` // "schema.table" glob patterns (path.Match syntax: * ? [..]); default ["public.*"]
	Exclude []string `yaml:"exclude"`
	// PublishViaPartitionRoot publishes the changes of a partitioned table's partitions under the
	// root table's topic; false (the default, as Debezium's publish.via.partition.root) gives each
	// partition its own topic.
	PublishViaPartitionRoot bool `yaml:"publish_via_partition_root"`
	// RowFilters publishes only the rows of a table that match a SQL condition (a publication row
	// filter, PostgreSQL 15+): "schema.table" (exact name) -> condition, e.g. "region = 'eu'".
	RowFilters map[string]string `yaml:"row_filters"`
	// Columns publishes only the listed columns of a table (a publication column list,
	// PostgreSQL 15+): "schema.table" (exact name) -> column names. The list must hold the replica
	// identity (key) columns.
	Columns map[string][]string `yaml:"columns"`

	// Event shaping with Debezium's options (shaping.go, docs/shaping.md). Regular expressions
	// over "<schema>.<table>.<column>", matched whole and case-insensitively, comma-separated
	// as Debezium writes them ("\," for a comma inside one).
	ColumnIncludeList string            `yaml:"column_include_list"` // column.include.list: only these columns are in the values
	ColumnExcludeList string            `yaml:"column_exclude_list"` // column.exclude.list: these are not
	ColumnMappers     map[string]string `yaml:"column_mappers"`      // column.mask.with.N.chars, column.mask.hash[.v2].<alg>.with.salt.<salt>, column.truncate.to.N.chars => columns
	MessageKeyColumns string            `yaml:"message_key_columns"` // message.key.columns: "<table regex>:<col>[,<col>];..."
}

// KafkaConfig configures the Kafka producer and topic creation.
type KafkaConfig struct {
	Brokers           []string          `yaml:"brokers"`             // required, host:port each
	TopicPrefix       string            `yaml:"topic_prefix"`        // required; Debezium topic.prefix; [a-zA-Z0-9._-]+
	CreateTopics      bool              `yaml:"create_topics"`       // default true; false = topics must exist
	Partitions        int               `yaml:"partitions"`          // default 1, >= 1
	ReplicationFactor int               `yaml:"replication_factor"`  // default 1, >= 1
	TopicConfig       map[string]string `yaml:"topic_config"`        // extra topic configs at creation; merged over the defaults
	Acks              string            `yaml:"acks"`                // all (default) | one | none
	Compression       string            `yaml:"compression"`         // lz4 (default) | none | gzip | snappy | zstd
	BatchMaxMessages  int               `yaml:"batch_max_messages"`  // default 10000
	BatchMaxBytes     ByteSize          `yaml:"batch_max_bytes"`     // default 1MiB
	BatchTimeout      time.Duration     `yaml:"batch_timeout"`       // default 0: an idle partition's first record is sent at once
	WriteTimeout      time.Duration     `yaml:"write_timeout"`       // default 30s
	MaxInFlightBytes  ByteSize          `yaml:"max_in_flight_bytes"` // default 8MiB; memory bound of unacknowledged records
	ConnectTimeout    time.Duration     `yaml:"connect_timeout"`     // start-up bound, default 30s
	ClientID          string            `yaml:"client_id"`           // default "pgcdc"
	ShutdownTimeout   time.Duration     `yaml:"shutdown_timeout"`    // default 30s: how long a stop waits for Kafka to acknowledge what is in flight
	TLS               KafkaTLSConfig    `yaml:"tls"`                 // TLS to the brokers (security.go)
	SASL              KafkaSASLConfig   `yaml:"sasl"`                // SASL authentication to the brokers (security.go)
}

// EventsConfig shapes the Debezium-compatible events.
type EventsConfig struct {
	KeySchemas         bool   `yaml:"key_schemas"`                   // default true (JsonConverter key schemas.enable)
	ValueSchemas       bool   `yaml:"value_schemas"`                 // default true
	TombstonesOnDelete bool   `yaml:"tombstones_on_delete"`          // default true
	UnavailableValue   string `yaml:"unavailable_value_placeholder"` // default "__debezium_unavailable_value"
	UnknownTypes       string `yaml:"unknown_types"`                 // error (default) | text
	DecimalHandling    string `yaml:"decimal_handling"`              // precise (default) | double | string
	TimePrecision      string `yaml:"time_precision"`                // adaptive (default) | adaptive_time_microseconds | connect | isostring | microseconds | nanoseconds
	BinaryHandling     string `yaml:"binary_handling"`               // bytes (default) | base64 | base64-url-safe | hex
	IntervalHandling   string `yaml:"interval_handling"`             // numeric (default) | string
	HstoreHandling     string `yaml:"hstore_handling"`               // json (default) | map
	SchemaNameAdjust   string `yaml:"schema_name_adjustment"`        // none (default) | avro | avro_unicode: Debezium's schema.name.adjustment.mode
	FieldNameAdjust    string `yaml:"field_name_adjustment"`         // none (default) | avro | avro_unicode: Debezium's field.name.adjustment.mode

	Truncate             bool     `yaml:"truncate"`               // publish TRUNCATE as op "t" events (null key); default false, as Debezium (skipped.operations=t)
	Messages             bool     `yaml:"messages"`               // publish logical decoding messages to <prefix>.message; default true, as Debezium
	MessagePrefixInclude []string `yaml:"message_prefix_include"` // regular expressions (whole prefix); empty: all
	MessagePrefixExclude []string `yaml:"message_prefix_exclude"` // regular expressions (whole prefix)
	TransactionMetadata  bool     `yaml:"transaction_metadata"`   // BEGIN/END events on <prefix>.transaction and the envelope's transaction block; default false

	// Event shaping with Debezium's options and transforms (shaping.go, docs/shaping.md).
	SkippedOperations  string                   `yaml:"skipped_operations"`   // skipped.operations: "c,u,d,t" or "none"; "": t unless events.truncate
	Format             string                   `yaml:"format"`               // envelope (default) | io.debezium.transforms.ExtractNewRecordState (or unwrap)
	Unwrap             UnwrapConfig             `yaml:"unwrap"`               // ExtractNewRecordState's options
	ChangedFields      ChangedFieldsConfig      `yaml:"changed_fields"`       // ExtractChangedRecordState's headers
	RegexRouter        RegexRouterConfig        `yaml:"regex_router"`         // Kafka Connect's RegexRouter
	LogicalTableRouter LogicalTableRouterConfig `yaml:"logical_table_router"` // Debezium's ByLogicalTableRouter
}

// LogConfig configures logging.
type LogConfig struct {
	Level            string        `yaml:"level"`             // trace | debug | info (default) | warn | error
	Format           string        `yaml:"format"`            // json (default) | console | auto (console when stdout is a terminal)
	ProgressInterval time.Duration `yaml:"progress_interval"` // default 10s: periodic progress line; 0 disables
}

// MetricsConfig configures the operations HTTP endpoint: Prometheus /metrics, /healthz and /readyz.
type MetricsConfig struct {
	Listen string `yaml:"listen"` // host:port, default ":9187"; "" (in the file) or "off" disables the endpoint
	// WebConfigFile is a Prometheus exporter web configuration file (exporter-toolkit's
	// web.config.file): TLS certificates and basic-auth users for the endpoint. "" serves plain HTTP
	// without authentication.
	WebConfigFile string `yaml:"web_config_file"`
}

// Enabled reports whether the operations endpoint is served.
func (m MetricsConfig) Enabled() bool { return m.Listen != "" && m.Listen != MetricsOff }

// Default values that other packages may want to refer to.
const (
	DefaultSlot                      = "pgcdc"
	DefaultPublication               = "pgcdc"
	DefaultClientID                  = "pgcdc"
	DefaultUnavailableValue          = "__debezium_unavailable_value"
	DefaultSpoolMaxBytes    ByteSize = 10 * GiB
	DefaultMetricsListen             = ":9187"
	// MetricsOff as metrics.listen disables the endpoint (an empty environment variable counts
	// as unset, so PGCDC_METRICS_LISTEN=off is how the environment disables it).
	MetricsOff = "off"
)

// DefaultTopicConfig returns the topic configs applied at topic creation
// unless overridden: keep every event forever (the topics are the event log).
func DefaultTopicConfig() map[string]string {
	return map[string]string{"retention.ms": "-1", "cleanup.policy": "delete"}
}

// DefaultSpoolDir is the spool directory used when spool_dir is not set:
// filepath.Join(os.TempDir(), "pgcdc-spool-"+slot).
func DefaultSpoolDir(slot string) string {
	return filepath.Join(os.TempDir(), "pgcdc-spool-"+slot)
}

// Default returns the configuration with every default applied. It does not
// validate: Kafka brokers, the topic prefix and the DSN have no default.
func Default() Config {
	return Config{
		Postgres: PostgresConfig{
			Slot:                       DefaultSlot,
			Publication:                DefaultPublication,
			CreateSlot:                 true,
			CreatePublication:          true,
			PublicationMode:            PublicationFiltered,
			Streaming:                  false,
			SpoolDir:                   DefaultSpoolDir(DefaultSlot),
			SpoolMaxBytes:              DefaultSpoolMaxBytes,
			StatusInterval:             10 * time.Second,
			ConnectTimeout:             30 * time.Second,
			PublicationRefreshInterval: 30 * time.Second,
		},
		Tables: TablesConfig{
			Include:                 []string{"public.*"},
			PublishViaPartitionRoot: false,
			RowFilters:              map[string]string{},
			Columns:                 map[string][]string{},
			ColumnMappers:           map[string]string{},
		},
		Kafka: KafkaConfig{
			CreateTopics:      true,
			Partitions:        1,
			ReplicationFactor: 1,
			TopicConfig:       DefaultTopicConfig(),
			Acks:              "all",
			Compression:       "lz4",
			BatchMaxMessages:  10000,
			BatchMaxBytes:     1 * MiB,
			BatchTimeout:      0,
			WriteTimeout:      30 * time.Second,
			MaxInFlightBytes:  8 * MiB,
			ConnectTimeout:    30 * time.Second,
			ClientID:          DefaultClientID,
			ShutdownTimeout:   30 * time.Second,
			SASL:              KafkaSASLConfig{OAuth: KafkaOAuthConfig{Extensions: map[string]string{}}},
		},
		Events: EventsConfig{
			KeySchemas:           true,
			ValueSchemas:         true,
			TombstonesOnDelete:   true,
			UnavailableValue:     DefaultUnavailableValue,
			UnknownTypes:         "error",
			DecimalHandling:      "precise",
			TimePrecision:        "adaptive",
			BinaryHandling:       "bytes",
			IntervalHandling:     "numeric",
			HstoreHandling:       "json",
			SchemaNameAdjust:     "none",
			FieldNameAdjust:      "none",
			Messages:             true,
			MessagePrefixInclude: []string{},
			MessagePrefixExclude: []string{},
			Format:               FormatEnvelope,
			Unwrap: UnwrapConfig{
				DeleteTombstoneHandlingMode:    "tombstone",
				AddFields:                      []string{},
				AddFieldsPrefix:                "__",
				AddHeaders:                     []string{},
				AddHeadersPrefix:               "__",
				DropFieldsKeepSchemaCompatible: true,
			},
			LogicalTableRouter: LogicalTableRouterConfig{KeyEnforceUniqueness: true, KeyFieldName: DefaultLogicalTableKeyField},
		},
		Log: LogConfig{
			Level:            "info",
			Format:           "json",
			ProgressInterval: 10 * time.Second,
		},
		Heartbeat: HeartbeatConfig{
			Interval: 30 * time.Second,
		},
		Snapshot: SnapshotConfig{
			Mode:           SnapshotInitial,
			Workers:        2,
			ChunkRows:      100000,
			ProgressSchema: "public",

			IncrementalChunkRows: 1024,
			BackfillNewTables:    true,
		},
		Metrics: MetricsConfig{
			Listen: DefaultMetricsListen,
		},
		Deliver: defaultDeliver(),
		Outbox:  defaultOutbox(),
		HA:      HAConfig{TakeoverAfter: DefaultTakeoverAfter},
	}
}

// Redacted returns a copy that is safe to log or print: the passwords and
// client secrets are replaced by "xxxxx" when set and the DSN by RedactedDSN.
func (c Config) Redacted() Config {
	if c.Postgres.Password != "" {
		c.Postgres.Password = redactedPassword
	}
	if c.Kafka.SASL.Password != "" {
		c.Kafka.SASL.Password = redactedPassword
	}
	if c.Kafka.SASL.OAuth.ClientSecret != "" {
		c.Kafka.SASL.OAuth.ClientSecret = redactedPassword
	}
	if ext := c.Kafka.SASL.OAuth.Extensions; ext != nil {
		c.Kafka.SASL.OAuth.Extensions = make(map[string]string, len(ext))
		for k, v := range ext {
			c.Kafka.SASL.OAuth.Extensions[k] = v
		}
	}
	c.Postgres.DSN = c.Postgres.RedactedDSN()
	m := make(map[string]string, len(c.Kafka.TopicConfig))
	for k, v := range c.Kafka.TopicConfig {
		m[k] = v
	}
	c.Kafka.TopicConfig = m
	c.Tables.ColumnMappers = redactSalts(c.Tables.ColumnMappers) // shaping.go
	c.Tables.Include = append([]string(nil), c.Tables.Include...)
	c.Tables.Exclude = append([]string(nil), c.Tables.Exclude...)
	c.Kafka.Brokers = append([]string(nil), c.Kafka.Brokers...)
	return c
}
