package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// minimal is the least a valid configuration needs on top of the defaults.
var minimalEnv = []string{
	"PGCDC_POSTGRES_DSN=postgres://pgcdc@localhost/app",
	"PGCDC_KAFKA_BROKERS=localhost:9092",
	"PGCDC_KAFKA_TOPIC_PREFIX=app",
}

func valid() Config {
	c := Default()
	c.Postgres.DSN = "postgres://pgcdc@localhost/app"
	c.Kafka.Brokers = []string{"localhost:9092"}
	c.Kafka.TopicPrefix = "app"
	return c
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefault(t *testing.T) {
	d := Default()
	checks := []struct {
		name      string
		got, want any
	}{
		{"slot", d.Postgres.Slot, "pgcdc"},
		{"publication", d.Postgres.Publication, "pgcdc"},
		{"create_slot", d.Postgres.CreateSlot, true},
		{"create_publication", d.Postgres.CreatePublication, true},
		{"streaming", d.Postgres.Streaming, false},
		{"spool_dir", d.Postgres.SpoolDir, filepath.Join(os.TempDir(), "pgcdc-spool-pgcdc")},
		{"spool_max_bytes", d.Postgres.SpoolMaxBytes, 10 * GiB},
		{"status_interval", d.Postgres.StatusInterval, 10 * time.Second},
		{"pg connect_timeout", d.Postgres.ConnectTimeout, 30 * time.Second},
		{"publication_refresh_interval", d.Postgres.PublicationRefreshInterval, 30 * time.Second},
		{"include", d.Tables.Include, []string{"public.*"}},
		{"exclude", d.Tables.Exclude, []string(nil)},
		{"create_topics", d.Kafka.CreateTopics, true},
		{"partitions", d.Kafka.Partitions, 1},
		{"replication_factor", d.Kafka.ReplicationFactor, 1},
		{"topic_config", d.Kafka.TopicConfig, map[string]string{"retention.ms": "-1", "cleanup.policy": "delete"}},
		{"acks", d.Kafka.Acks, "all"},
		{"compression", d.Kafka.Compression, "lz4"},
		{"batch_max_messages", d.Kafka.BatchMaxMessages, 10000},
		{"batch_max_bytes", d.Kafka.BatchMaxBytes, ByteSize(1 << 20)},
		{"batch_timeout", d.Kafka.BatchTimeout, time.Duration(0)},
		{"write_timeout", d.Kafka.WriteTimeout, 30 * time.Second},
		{"max_in_flight_bytes", d.Kafka.MaxInFlightBytes, ByteSize(8 << 20)},
		{"kafka connect_timeout", d.Kafka.ConnectTimeout, 30 * time.Second},
		{"client_id", d.Kafka.ClientID, "pgcdc"},
		{"key_schemas", d.Events.KeySchemas, true},
		{"value_schemas", d.Events.ValueSchemas, true},
		{"tombstones_on_delete", d.Events.TombstonesOnDelete, true},
		{"unavailable_value", d.Events.UnavailableValue, "__debezium_unavailable_value"},
		{"unknown_types", d.Events.UnknownTypes, "error"},
		{"decimal_handling", d.Events.DecimalHandling, "precise"},
		{"time_precision", d.Events.TimePrecision, "adaptive"},
		{"binary_handling", d.Events.BinaryHandling, "bytes"},
		{"interval_handling", d.Events.IntervalHandling, "numeric"},
		{"log level", d.Log.Level, "info"},
		{"log format", d.Log.Format, "json"},
		{"metrics listen", d.Metrics.Listen, ":9187"},
		{"metrics enabled", d.Metrics.Enabled(), true},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.name, c.got, c.want)
		}
	}
	// Default is fresh each time: mutating one must not affect the next.
	d.Kafka.TopicConfig["x"] = "y"
	d.Tables.Include[0] = "x.y"
	if d2 := Default(); len(d2.Kafka.TopicConfig) != 2 || d2.Tables.Include[0] != "public.*" {
		t.Error("Default shares mutable state")
	}
	// Only the three required keys are missing.
	fes := FieldErrors(Default().Validate())
	var keys []string
	for _, fe := range fes {
		keys = append(keys, fe.Key)
	}
	if want := []string{"postgres.dsn", "kafka.brokers", "kafka.topic_prefix"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("Default().Validate() keys = %v, want %v", keys, want)
	}
	if err := valid().Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func TestLoadDefaultsAndEnvOnly(t *testing.T) {
	cfg, err := Load("", minimalEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, valid()) {
		t.Errorf("got %+v\nwant %+v", cfg, valid())
	}
	if _, err := Load("", nil); err == nil || !strings.Contains(err.Error(), "kafka.brokers: required (set it in the file or PGCDC_KAFKA_BROKERS)") {
		t.Errorf("Load with nothing: %v", err)
	}
}

func TestLoadFile(t *testing.T) {
	p := writeFile(t, "c.yaml", `
postgres:
  dsn: "host=db user=u dbname=app"
  slot: my_slot
  streaming: true
  spool_max_bytes: 1048576
  status_interval: 2s
  publication_refresh_interval: 0s
tables:
  include: ["sales.*", "public.orders"]
  exclude:
    - sales.tmp_*
kafka:
  brokers: [k1:9092, "k2:9093"]
  topic_prefix: shop.v1
  partitions: 6
  replication_factor: 3
  topic_config:
    min.insync.replicas: 2
    cleanup.policy: compact
  acks: one
  compression: zstd
  max_in_flight_bytes: 128MiB
  batch_max_bytes: 2MB
  create_topics: false
events:
  key_schemas: false
  unknown_types: text
log:
  level: debug
  format: auto
metrics:
  listen: 127.0.0.1:0
`)
	cfg, err := Load(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Postgres.DSN = "host=db user=u dbname=app"
	want.Postgres.Slot = "my_slot"
	want.Postgres.Streaming = true
	want.Postgres.SpoolDir = DefaultSpoolDir("my_slot") // derived from the slot
	want.Postgres.SpoolMaxBytes = MiB
	want.Postgres.StatusInterval = 2 * time.Second
	want.Postgres.PublicationRefreshInterval = 0
	want.Tables.Include = []string{"sales.*", "public.orders"}
	want.Tables.Exclude = []string{"sales.tmp_*"}
	want.Kafka.Brokers = []string{"k1:9092", "k2:9093"}
	want.Kafka.TopicPrefix = "shop.v1"
	want.Kafka.Partitions = 6
	want.Kafka.ReplicationFactor = 3
	want.Kafka.TopicConfig = map[string]string{"retention.ms": "-1", "cleanup.policy": "compact", "min.insync.replicas": "2"}
	want.Kafka.Acks = "one"
	want.Kafka.Compression = "zstd"
	want.Kafka.MaxInFlightBytes = 128 * MiB
	want.Kafka.BatchMaxBytes = 2 * MB
	want.Kafka.CreateTopics = false
	want.Events.KeySchemas = false
	want.Events.UnknownTypes = "text"
	want.Log.Level = "debug"
	want.Log.Format = "auto"
	want.Metrics.Listen = "127.0.0.1:0"
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestLoadFileEdgeCases(t *testing.T) {
	// An empty file and a comments-only file give the defaults.
	for _, content := range []string{"", "# nothing\n", "---\n"} {
		p := writeFile(t, "e.yaml", content)
		cfg, err := Load(p, minimalEnv)
		if err != nil {
			t.Fatalf("%q: %v", content, err)
		}
		if !reflect.DeepEqual(cfg, valid()) {
			t.Errorf("%q: not defaults", content)
		}
	}
	// Empty values keep the defaults; an explicit spool_dir is kept.
	p := writeFile(t, "n.yaml", "postgres:\n  slot:\n  spool_dir: /var/spool/pgcdc\nkafka:\nlog:\n  level: ~\n")
	cfg, err := Load(p, minimalEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Postgres.Slot != "pgcdc" || cfg.Log.Level != "info" || cfg.Postgres.SpoolDir != "/var/spool/pgcdc" {
		t.Errorf("got slot %q level %q spool %q", cfg.Postgres.Slot, cfg.Log.Level, cfg.Postgres.SpoolDir)
	}
	// Anchors and aliases work.
	p = writeFile(t, "a.yaml", "postgres:\n  connect_timeout: &t 7s\nkafka:\n  connect_timeout: *t\n")
	if cfg, err = Load(p, minimalEnv); err != nil || cfg.Kafka.ConnectTimeout != 7*time.Second {
		t.Errorf("alias: %v %v", cfg.Kafka.ConnectTimeout, err)
	}
	// Missing file names the file.
	if _, err := Load("/nonexistent/pgcdc.yaml", nil); err == nil || !strings.Contains(err.Error(), "/nonexistent/pgcdc.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"unknown top-level key", "postgress:\n  dsn: x\n", []string{"c.yaml:1: unknown key postgress (did you mean postgres?)"}},
		{"unknown nested key", "postgres:\n  dsn: x\n  slott: a\n", []string{"c.yaml:3: unknown key postgres.slott (did you mean slot?)"}},
		{"unknown key lists known", "log:\n  zzzzzzzz: 1\n", []string{"c.yaml:2: unknown key log.zzzzzzzz (known: level, format, progress_interval)"}},
		{"several unknown keys at once", "kafka:\n  brokerz: [a:1]\n  topicprefix: x\n", []string{"c.yaml:2: unknown key kafka.brokerz", "c.yaml:3: unknown key kafka.topicprefix"}},
		{"duplicate key", "log:\n  level: info\n  level: warn\n", []string{"c.yaml:3: log.level: duplicate key (first set on line 2)"}},
		{"bad int", "kafka:\n  partitions: many\n", []string{`c.yaml:2: kafka.partitions: want an integer, got "many"`}},
		{"bad bool", "postgres:\n  streaming: maybe\n", []string{`c.yaml:2: postgres.streaming: want true or false, got "maybe"`}},
		{"bad duration", "kafka:\n  batch_timeout: 5\n", []string{`c.yaml:2: kafka.batch_timeout: invalid duration "5"`}},
		{"bad size", "kafka:\n  max_in_flight_bytes: 64 potatoes\n", []string{`c.yaml:2: kafka.max_in_flight_bytes: invalid size "64 potatoes"`}},
		{"list as scalar", "kafka:\n  brokers: a:1\n", []string{`c.yaml:2: kafka.brokers: want a list of strings, got "a:1"`}},
		{"map as list", "kafka:\n  topic_config: [a]\n", []string{"c.yaml:2: kafka.topic_config: want a mapping of keys to strings, got a list"}},
		{"section not a mapping", "kafka: 3\n", []string{"c.yaml:1: kafka must be a mapping"}},
		{"root not a mapping", "- a\n", []string{"c.yaml:1: the configuration must be a mapping"}},
		{"syntax error", "kafka:\n  brokers: [\n", []string{"c.yaml: yaml:"}},
		{"two documents", "log:\n  level: info\n---\nlog:\n  level: warn\n", []string{"more than one YAML document"}},
		{"validation after file", "kafka:\n  acks: maybe\n", []string{`kafka.acks: invalid value "maybe" (allowed: all, one, none)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, "c.yaml", tt.yaml)
			_, err := Load(p, minimalEnv)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	tests := []struct {
		name  string
		env   []string
		check func(c Config) bool
	}{
		{"string", []string{"PGCDC_POSTGRES_SLOT=s2"}, func(c Config) bool { return c.Postgres.Slot == "s2" }},
		{"string with key longer than section word", []string{"PGCDC_EVENTS_UNAVAILABLE_VALUE_PLACEHOLDER=??"}, func(c Config) bool { return c.Events.UnavailableValue == "??" }},
		{"bool false", []string{"PGCDC_KAFKA_CREATE_TOPICS=false"}, func(c Config) bool { return !c.Kafka.CreateTopics }},
		{"bool 1", []string{"PGCDC_POSTGRES_STREAMING=1"}, func(c Config) bool { return c.Postgres.Streaming }},
		{"int", []string{"PGCDC_KAFKA_PARTITIONS=12"}, func(c Config) bool { return c.Kafka.Partitions == 12 }},
		{"duration", []string{"PGCDC_KAFKA_BATCH_TIMEOUT=20ms"}, func(c Config) bool { return c.Kafka.BatchTimeout == 20*time.Millisecond }},
		{"duration zero", []string{"PGCDC_POSTGRES_PUBLICATION_REFRESH_INTERVAL=0"}, func(c Config) bool { return c.Postgres.PublicationRefreshInterval == 0 }},
		{"bytesize unit", []string{"PGCDC_KAFKA_MAX_IN_FLIGHT_BYTES=64MiB"}, func(c Config) bool { return c.Kafka.MaxInFlightBytes == 64*MiB }},
		{"bytesize plain", []string{"PGCDC_POSTGRES_SPOOL_MAX_BYTES=1048576"}, func(c Config) bool { return c.Postgres.SpoolMaxBytes == MiB }},
		{"list", []string{"PGCDC_KAFKA_BROKERS=a:1, b:2,,c:3"}, func(c Config) bool { return reflect.DeepEqual(c.Kafka.Brokers, []string{"a:1", "b:2", "c:3"}) }},
		{"list tables", []string{"PGCDC_TABLES_INCLUDE=s.*,public.t", "PGCDC_TABLES_EXCLUDE=s.tmp"}, func(c Config) bool {
			return reflect.DeepEqual(c.Tables.Include, []string{"s.*", "public.t"}) && reflect.DeepEqual(c.Tables.Exclude, []string{"s.tmp"})
		}},
		{"map merged", []string{"PGCDC_KAFKA_TOPIC_CONFIG=min.insync.replicas=2, retention.ms=1000"}, func(c Config) bool {
			return reflect.DeepEqual(c.Kafka.TopicConfig, map[string]string{"min.insync.replicas": "2", "retention.ms": "1000", "cleanup.policy": "delete"})
		}},
		{"map value with comma", []string{"PGCDC_KAFKA_TOPIC_CONFIG=cleanup.policy=compact,delete,retention.ms=5"}, func(c Config) bool {
			return c.Kafka.TopicConfig["cleanup.policy"] == "compact,delete" && c.Kafka.TopicConfig["retention.ms"] == "5"
		}},
		{"empty value is unset", []string{"PGCDC_KAFKA_PARTITIONS=", "PGCDC_LOG_LEVEL="}, func(c Config) bool { return c.Kafka.Partitions == 1 && c.Log.Level == "info" }},
		{"test and reserved variables ignored", []string{"PGCDC_TEST_PG_DSN=x", "PGCDC_TEST_ANYTHING=1", "PGCDC_CONFIG=/etc/pgcdc.yaml", "HOME=/root", "PATH"}, func(c Config) bool { return true }},
		{"password", []string{"PGCDC_POSTGRES_PASSWORD=s3cr=t"}, func(c Config) bool { return c.Postgres.Password == "s3cr=t" }},
		{"spool dir follows env slot", []string{"PGCDC_POSTGRES_SLOT=other"}, func(c Config) bool { return c.Postgres.SpoolDir == DefaultSpoolDir("other") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load("", append(append([]string(nil), minimalEnv...), tt.env...))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(cfg) {
				t.Errorf("not applied: %+v", cfg)
			}
		})
	}
}

func TestEnvErrors(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{"unknown variable", []string{"PGCDC_KAFKA_BROKER=a:1"}, []string{"environment variable PGCDC_KAFKA_BROKER: no such setting (did you mean PGCDC_KAFKA_BROKERS?)"}},
		{"unknown section", []string{"PGCDC_FOO=1"}, []string{"PGCDC_FOO: no such setting"}},
		{"bad int", []string{"PGCDC_KAFKA_PARTITIONS=six"}, []string{`environment variable PGCDC_KAFKA_PARTITIONS (kafka.partitions): invalid value "six": want an integer`}},
		{"bad bool", []string{"PGCDC_EVENTS_KEY_SCHEMAS=yes please"}, []string{`PGCDC_EVENTS_KEY_SCHEMAS (events.key_schemas): invalid value "yes please": want true or false`}},
		{"bad duration", []string{"PGCDC_KAFKA_WRITE_TIMEOUT=30"}, []string{`PGCDC_KAFKA_WRITE_TIMEOUT (kafka.write_timeout): invalid duration "30"`}},
		{"bad size", []string{"PGCDC_KAFKA_BATCH_MAX_BYTES=1XB"}, []string{`PGCDC_KAFKA_BATCH_MAX_BYTES (kafka.batch_max_bytes): invalid size "1XB"`}},
		{"bad map", []string{"PGCDC_KAFKA_TOPIC_CONFIG=oops"}, []string{`PGCDC_KAFKA_TOPIC_CONFIG (kafka.topic_config): invalid value "oops": want key=value pairs`}},
		{"several at once", []string{"PGCDC_X=1", "PGCDC_LOG_LEVL=debug"}, []string{"PGCDC_X", "PGCDC_LOG_LEVL: no such setting (did you mean PGCDC_LOG_LEVEL?)"}},
		{"validation names key", []string{"PGCDC_LOG_LEVEL=loud"}, []string{`log.level: invalid value "loud" (allowed: trace, debug, info, warn, error)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("", append(append([]string(nil), minimalEnv...), tt.env...))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestPrecedence(t *testing.T) {
	p := writeFile(t, "c.yaml", `
postgres:
  dsn: postgres://file@h/db
  slot: from_file
kafka:
  brokers: [file:9092]
  topic_prefix: file
  partitions: 3
  topic_config:
    retention.ms: "1000"
log:
  level: warn
`)
	cfg, err := Load(p, []string{
		"PGCDC_KAFKA_BROKERS=env1:9092,env2:9092",
		"PGCDC_KAFKA_PARTITIONS=5",
		"PGCDC_KAFKA_TOPIC_CONFIG=segment.ms=60000",
	})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"default kept", cfg.Kafka.ReplicationFactor, 1},
		{"file over default", cfg.Postgres.Slot, "from_file"},
		{"file over default (log)", cfg.Log.Level, "warn"},
		{"file not overridden", cfg.Kafka.TopicPrefix, "file"},
		{"env over file (list)", cfg.Kafka.Brokers, []string{"env1:9092", "env2:9092"}},
		{"env over file (int)", cfg.Kafka.Partitions, 5},
		{"map: default < file < env, merged", cfg.Kafka.TopicConfig, map[string]string{"retention.ms": "1000", "cleanup.policy": "delete", "segment.ms": "60000"}},
		{"spool dir from file slot", cfg.Postgres.SpoolDir, DefaultSpoolDir("from_file")},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

// TestEveryKeyHasEnv sets every key through the environment with a valid
// value of its type, so a new field of an unsupported type fails here.
func TestEveryKeyHasEnv(t *testing.T) {
	for _, f := range allFields {
		var c Config
		v := reflect.ValueOf(&c).Elem().FieldByIndex(f.Index)
		var sample string
		switch {
		case f.Type == durationType:
			sample = "1s"
		case f.Type == reflect.TypeOf(ByteSize(0)):
			sample = "1KiB"
		case f.Type == reflect.TypeOf(Routes{}):
			sample = `[{name: a, url: "http://x", tables: [public.t]}]`
		case f.Type.Kind() == reflect.Bool:
			sample = "true"
		case f.Type.Kind() == reflect.Int:
			sample = "2"
		case f.Type.Kind() == reflect.String:
			sample = "x"
		case f.Type.Kind() == reflect.Slice:
			sample = "a,b"
		case f.Type.Kind() == reflect.Map:
			sample = "a=b"
		default:
			t.Errorf("%s: type %s has no test sample", f.Key, f.Type)
			continue
		}
		if err := setFromString(v, sample); err != nil {
			t.Errorf("%s (%s): %v", f.Env, f.Key, err)
		}
		if v.IsZero() {
			t.Errorf("%s: not set", f.Env)
		}
		if want := "PGCDC_" + strings.ToUpper(strings.ReplaceAll(f.Key, ".", "_")); f.Env != want {
			t.Errorf("%s: env %s, want %s", f.Key, f.Env, want)
		}
	}
	if n := len(EnvNames()); n != len(Keys()) || n < 40 {
		t.Errorf("EnvNames: %d, Keys: %d", n, len(Keys()))
	}
}

func TestExampleYAML(t *testing.T) {
	cfg, err := Load("example.yaml", nil)
	if err != nil {
		t.Fatalf("example.yaml: %v", err)
	}
	want := Default()
	want.Postgres.DSN = "postgres://pgcdc@localhost:5432/app?sslmode=disable"
	want.Kafka.Brokers = []string{"localhost:9092"}
	want.Kafka.TopicPrefix = "app"
	if len(cfg.Tables.Exclude) == 0 {
		cfg.Tables.Exclude = nil // "exclude: []" is the default (none)
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("example.yaml differs from Default():\n got  %+v\n want %+v", cfg, want)
	}
	// Every key appears in the example (as an uncommented key).
	data, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Keys() {
		leaf := k[strings.LastIndex(k, ".")+1:]
		depth := strings.Count(k, ".") // nested sections (kafka.sasl.oauth) are indented further
		if !strings.Contains(string(data), "\n"+strings.Repeat("  ", depth)+leaf+":") {
			t.Errorf("example.yaml lacks %s", k)
		}
	}
}

func TestErrorsAreFieldErrors(t *testing.T) {
	c := valid()
	c.Log.Level = "x"
	c.Kafka.Partitions = 0
	err := c.Validate()
	fes := FieldErrors(err)
	if len(fes) != 2 || fes[0].Key != "kafka.partitions" || fes[1].Key != "log.level" {
		t.Fatalf("FieldErrors = %v", fes)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Error("errors.As(*FieldError) failed")
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	c := valid()
	c.Postgres.Password = "hunter2"
	c.Kafka.MaxInFlightBytes = 3 * MiB
	c.Kafka.BatchTimeout = 1500 * time.Microsecond
	c.Tables.Exclude = []string{"public.tmp"}
	data, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "max_in_flight_bytes: 3MiB") || !strings.Contains(string(data), "batch_timeout: 1.5ms") {
		t.Errorf("marshalled:\n%s", data)
	}
	back := Default()
	if err := Parse(data, "<marshalled>", &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip:\n got  %+v\n want %+v", back, c)
	}
	red, err := yaml.Marshal(c.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(red), "hunter2") || !strings.Contains(string(red), "password: xxxxx") {
		t.Errorf("Redacted:\n%s", red)
	}
	if c.Postgres.Password != "hunter2" {
		t.Error("Redacted modified its receiver")
	}
}

// The endpoint is on by default; a quoted empty value in the file or "off" (the only way from the
// environment, where an empty variable is unset) turns it off.
func TestMetricsListenDisable(t *testing.T) {
	tests := []struct {
		name, file string
		env        []string
		listen     string
		enabled    bool
	}{
		{"default", "", nil, ":9187", true},
		{"empty quoted in file", "metrics:\n  listen: \"\"\n", nil, "", false},
		{"null in file keeps default", "metrics:\n  listen:\n", nil, ":9187", true},
		{"off in file", "metrics:\n  listen: off\n", nil, "off", false},
		{"off in env", "", []string{"PGCDC_METRICS_LISTEN=off"}, "off", false},
		{"empty env is unset", "", []string{"PGCDC_METRICS_LISTEN="}, ":9187", true},
		{"env address", "", []string{"PGCDC_METRICS_LISTEN=127.0.0.1:9999"}, "127.0.0.1:9999", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.file != "" {
				path = writeFile(t, "m.yaml", tt.file)
			}
			cfg, err := Load(path, append(append([]string(nil), minimalEnv...), tt.env...))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Metrics.Listen != tt.listen || cfg.Metrics.Enabled() != tt.enabled {
				t.Errorf("listen %q enabled %v, want %q %v", cfg.Metrics.Listen, cfg.Metrics.Enabled(), tt.listen, tt.enabled)
			}
		})
	}
}
