package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// FieldError is one configuration problem: the dotted key it concerns
// ("kafka.brokers") and what is wrong and allowed.
type FieldError struct {
	Key string
	Msg string
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Msg }

// FieldErrors returns the *FieldError values inside err (as returned by
// Validate, Load or ConnString), in order.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if fe, ok := e.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		walk(errors.Unwrap(e))
	}
	walk(err)
	return out
}

var (
	slotRe        = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	publicationRe = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	topicPrefixRe = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,200}$`)
)

type validator struct{ errs []error }

func (v *validator) add(key, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) required(key string, empty bool) bool {
	if empty {
		v.add(key, "required (set it in the file or %s)", EnvName(key))
	}
	return !empty
}

func (v *validator) oneOf(key, got string, allowed ...string) {
	for _, a := range allowed {
		if got == a {
			return
		}
	}
	v.add(key, "invalid value %q (allowed: %s)", got, strings.Join(allowed, ", "))
}

func (v *validator) positive(key string, d time.Duration) {
	if d <= 0 {
		v.add(key, "must be a duration > 0, e.g. 30s (got %s)", d)
	}
}

func (v *validator) atLeast(key string, got, least int64) {
	if got < least {
		v.add(key, "must be >= %d (got %d)", least, got)
	}
}

// Validate checks every setting and returns all problems, each a
// *FieldError naming its key, joined with errors.Join (nil when valid). It
// reads postgres.password_file to check that it is usable.
func (c Config) Validate() error {
	v := &validator{}
	c.Postgres.validate(v)
	c.Tables.validate(v)
	c.Tables.validateShaping(v) // shaping.go
	c.Kafka.validate(v)
	c.Events.validate(v)
	c.Events.validateShaping(v)
	c.Log.validate(v)
	if c.Heartbeat.Interval < 0 {
		v.add("heartbeat.interval", "must be a duration >= 0 (0 disables heartbeats), got %s", c.Heartbeat.Interval)
	}
	if c.Heartbeat.Topic && c.Heartbeat.Interval == 0 {
		v.add("heartbeat.topic", "needs heartbeat.interval > 0")
	}
	c.Metrics.validate(v)
	c.Snapshot.validate(v)
	c.Deliver.validate(v)
	c.Outbox.validate(v, c.Tables)
	c.Signal.validate(v)
	c.validateHA(v)
	return errors.Join(v.errs...)
}

func (p PostgresConfig) validate(v *validator) {
	if v.required("postgres.dsn", p.DSN == "") {
		if has, err := dsnHasPassword(p.DSN); err != nil {
			v.add("postgres.dsn", "%v", err)
		} else if has && (p.Password != "" || p.PasswordFile != "") {
			v.add("postgres.dsn", "contains a password and postgres.password or postgres.password_file is set too; keep the password in one place")
		}
	}
	if _, err := p.ResolvePassword(); err != nil {
		v.errs = append(v.errs, err)
	}
	p.validateTLS(v)
	if !slotRe.MatchString(p.Slot) {
		v.add("postgres.slot", "invalid slot name %q: use 1 to 63 lower-case letters, digits and underscores ([a-z0-9_]{1,63})", p.Slot)
	}
	if p.PublicationMode != "" {
		v.oneOf("postgres.publication_mode", p.PublicationMode, PublicationFiltered, PublicationAllTables, PublicationDisabled, PublicationNoTables)
	}
	if !p.CreatePublication && p.PublicationMode != "" && p.PublicationMode != PublicationFiltered && p.PublicationMode != PublicationDisabled {
		v.add("postgres.create_publication", "false means publication_mode disabled, but publication_mode is %q: set only publication_mode", p.PublicationMode)
	}
	if !publicationRe.MatchString(p.Publication) {
		v.add("postgres.publication", "invalid publication name %q: use a lower-case identifier, 1 to 63 letters, digits and underscores not starting with a digit ([a-z_][a-z0-9_]{0,62})", p.Publication)
	}
	if p.Streaming && p.SpoolDir == "" {
		v.add("postgres.spool_dir", "required when postgres.streaming is true (a directory for spooling in-progress transactions)")
	}
	if p.SpoolMaxBytes <= 0 {
		v.add("postgres.spool_max_bytes", "must be a size > 0, e.g. 10GiB (got %s)", p.SpoolMaxBytes)
	}
	v.positive("postgres.status_interval", p.StatusInterval)
	v.positive("postgres.connect_timeout", p.ConnectTimeout)
	if p.PublicationRefreshInterval < 0 {
		v.add("postgres.publication_refresh_interval", "must be >= 0 (0 disables the refresh; got %s)", p.PublicationRefreshInterval)
	}
}

func (t TablesConfig) validate(v *validator) {
	if len(t.Include) == 0 {
		v.add("tables.include", "at least one schema.table pattern is required (e.g. public.*); nothing would be captured")
	}
	for i, p := range t.Include {
		if msg := checkTablePattern(p); msg != "" {
			v.add(fmt.Sprintf("tables.include[%d]", i), "%s", msg)
		}
	}
	for i, p := range t.Exclude {
		if msg := checkTablePattern(p); msg != "" {
			v.add(fmt.Sprintf("tables.exclude[%d]", i), "%s", msg)
		}
	}
	for name, cond := range t.RowFilters {
		if msg := checkTableName(name); msg != "" {
			v.add("tables.row_filters", "%s", msg)
		} else if schema, table, _ := strings.Cut(name, "."); !t.Matches(schema, table) {
			v.add("tables.row_filters", "%s is not captured (tables.include/exclude): its row filter would do nothing", name)
		}
		if strings.TrimSpace(cond) == "" {
			v.add("tables.row_filters", "%s: the condition is empty (remove the entry to publish every row)", name)
		}
	}
	for name, cols := range t.Columns {
		if msg := checkTableName(name); msg != "" {
			v.add("tables.columns", "%s", msg)
		} else if schema, table, _ := strings.Cut(name, "."); !t.Matches(schema, table) {
			v.add("tables.columns", "%s is not captured (tables.include/exclude): its column list would do nothing", name)
		}
		if len(cols) == 0 {
			v.add("tables.columns", "%s: the column list is empty (remove the entry to publish every column)", name)
		}
		for _, c := range cols {
			if strings.TrimSpace(c) == "" {
				v.add("tables.columns", "%s: empty column name", name)
			}
		}
	}
}

func (k KafkaConfig) validate(v *validator) {
	if v.required("kafka.brokers", len(k.Brokers) == 0) {
		for i, b := range k.Brokers {
			if msg := checkBroker(b); msg != "" {
				v.add(fmt.Sprintf("kafka.brokers[%d]", i), "%s", msg)
			}
		}
	}
	if v.required("kafka.topic_prefix", k.TopicPrefix == "") && !topicPrefixRe.MatchString(k.TopicPrefix) {
		v.add("kafka.topic_prefix", "invalid value %q: use letters, digits, '.', '_' and '-' only ([a-zA-Z0-9._-], at most 200 characters)", k.TopicPrefix)
	}
	v.atLeast("kafka.partitions", int64(k.Partitions), 1)
	v.atLeast("kafka.replication_factor", int64(k.ReplicationFactor), 1)
	for name := range k.TopicConfig {
		if strings.TrimSpace(name) == "" {
			v.add("kafka.topic_config", "empty config name")
		}
	}
	v.oneOf("kafka.acks", k.Acks, "all", "one", "none")
	v.oneOf("kafka.compression", k.Compression, "none", "gzip", "snappy", "lz4", "zstd")
	v.atLeast("kafka.batch_max_messages", int64(k.BatchMaxMessages), 1)
	if k.BatchMaxBytes <= 0 {
		v.add("kafka.batch_max_bytes", "must be a size > 0, e.g. 1MiB (got %s)", k.BatchMaxBytes)
	}
	if k.BatchTimeout < 0 {
		v.add("kafka.batch_timeout", "must be a duration >= 0, got %s", k.BatchTimeout)
	}
	v.positive("kafka.write_timeout", k.WriteTimeout)
	if k.MaxInFlightBytes <= 0 {
		v.add("kafka.max_in_flight_bytes", "must be a size > 0, e.g. 64MiB (got %s)", k.MaxInFlightBytes)
	} else if k.BatchMaxBytes > 0 && k.MaxInFlightBytes < k.BatchMaxBytes {
		v.add("kafka.max_in_flight_bytes", "must be >= kafka.batch_max_bytes (%s), or a full batch could never be sent (got %s)", k.BatchMaxBytes, k.MaxInFlightBytes)
	}
	v.positive("kafka.connect_timeout", k.ConnectTimeout)
	v.required("kafka.client_id", k.ClientID == "")
	v.positive("kafka.shutdown_timeout", k.ShutdownTimeout)
	k.TLS.validate(v)
	k.SASL.validate(v, k.TLS.Enabled)
}

// checkBroker says what is wrong with a host:port broker address, or "".
func checkBroker(b string) string {
	host, port, err := net.SplitHostPort(b)
	if err != nil || host == "" {
		return fmt.Sprintf("invalid broker %q: want host:port, e.g. localhost:9092 or [::1]:9092", b)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("invalid broker %q: port must be a number from 1 to 65535", b)
	}
	return ""
}

func (e EventsConfig) validate(v *validator) {
	v.oneOf("events.unknown_types", e.UnknownTypes, "error", "text")
	v.oneOf("events.hstore_handling", e.HstoreHandling, "json", "map")
	for i, p := range e.MessagePrefixInclude {
		if _, err := regexp.Compile("^(?:" + p + ")$"); err != nil {
			v.add(fmt.Sprintf("events.message_prefix_include[%d]", i), "invalid regular expression %q: %v", p, err)
		}
	}
	for i, p := range e.MessagePrefixExclude {
		if _, err := regexp.Compile("^(?:" + p + ")$"); err != nil {
			v.add(fmt.Sprintf("events.message_prefix_exclude[%d]", i), "invalid regular expression %q: %v", p, err)
		}
	}
	v.oneOf("events.decimal_handling", e.DecimalHandling, "precise", "double", "string")
	v.oneOf("events.time_precision", e.TimePrecision, "adaptive", "adaptive_time_microseconds", "connect", "isostring", "microseconds", "nanoseconds")
	v.oneOf("events.schema_name_adjustment", e.SchemaNameAdjust, "none", "avro", "avro_unicode")
	v.oneOf("events.field_name_adjustment", e.FieldNameAdjust, "none", "avro", "avro_unicode")
	v.oneOf("events.binary_handling", e.BinaryHandling, "bytes", "base64", "base64-url-safe", "hex")
	v.oneOf("events.interval_handling", e.IntervalHandling, "numeric", "string")
}

func (l LogConfig) validate(v *validator) {
	v.oneOf("log.level", l.Level, "trace", "debug", "info", "warn", "error")
	v.oneOf("log.format", l.Format, "json", "console", "auto")
	if l.ProgressInterval < 0 {
		v.add("log.progress_interval", "must be a duration >= 0 (0 disables progress lines), got %s", l.ProgressInterval)
	}
}

func (m MetricsConfig) validate(v *validator) {
	if m.Enabled() {
		checkListen(v, "metrics.listen", m.Listen)
	}
	if m.WebConfigFile != "" {
		if _, err := os.Stat(m.WebConfigFile); err != nil {
			v.add("metrics.web_config_file", "cannot read %q: %v", m.WebConfigFile, err)
		}
	}
}

// checkListen checks the [host]:port of an operations endpoint.
func checkListen(v *validator, key, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(key, "invalid address %q: want [host]:port, e.g. :9187 or 127.0.0.1:9187 (or off to disable the endpoint)", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.add(key, "invalid address %q: port must be a number from 0 to 65535", addr)
	}
	if strings.ContainsAny(host, " /") {
		v.add(key, "invalid address %q: host must be an IP address or a host name", addr)
	}
}

func (s SnapshotConfig) validate(v *validator) {
	switch s.Mode {
	case SnapshotInitial, SnapshotNoData, SnapshotInitialOnly, SnapshotAlways, SnapshotWhenNeeded:
	default:
		v.add("snapshot.mode", "must be initial, no_data, initial_only, always or when_needed, got %q", s.Mode)
	}
	if s.Workers < 1 || s.Workers > 64 {
		v.add("snapshot.workers", "must be between 1 and 64, got %d", s.Workers)
	}
	if s.ChunkRows < 1 {
		v.add("snapshot.chunk_rows", "must be >= 1, got %d", s.ChunkRows)
	}
	if s.MaxRowsPerSec < 0 {
		v.add("snapshot.max_rows_per_sec", "must be >= 0 (0: no limit), got %d", s.MaxRowsPerSec)
	}
	if s.ProgressSchema == "" || len(s.ProgressSchema) > 63 {
		v.add("snapshot.progress_schema", "must be a schema name of 1 to 63 bytes, got %q", s.ProgressSchema)
	}
	if s.IncrementalChunkRows < 1 || s.IncrementalChunkRows > 1000000 {
		v.add("snapshot.incremental_chunk_rows", "must be between 1 and 1000000, got %d", s.IncrementalChunkRows)
	}
}

func (c Config) validateHA(v *validator) {
	if !c.HA.Enabled {
		return
	}
	if c.HA.TakeoverAfter < time.Second {
		v.add("ha.takeover_after", "must be at least 1s, got %s", c.HA.TakeoverAfter)
	}
	if c.Kafka.Acks != "" && c.Kafka.Acks != "all" {
		v.add("kafka.acks", "must be all with ha.enabled (the fencing producer is idempotent), got %q", c.Kafka.Acks)
	}
	if c.Snapshot.Mode == SnapshotInitialOnly {
		v.add("ha.enabled", "has no use with snapshot.mode initial_only (the process exits after the snapshot)")
	}
}
