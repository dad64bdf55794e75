package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidateMessages(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string // the full text of one FieldError
	}{
		{"dsn required", func(c *Config) { c.Postgres.DSN = "" }, "postgres.dsn: required (set it in the file or PGCDC_POSTGRES_DSN)"},
		{"dsn malformed", func(c *Config) { c.Postgres.DSN = "host=h junk" }, `postgres.dsn: missing "=" after the word at offset 7`},
		{"dsn password twice", func(c *Config) { c.Postgres.DSN = "postgres://u:p@h/db"; c.Postgres.Password = "q" }, "postgres.dsn: contains a password and postgres.password or postgres.password_file is set too"},
		{"password and file", func(c *Config) { c.Postgres.Password = "p"; c.Postgres.PasswordFile = "/f" }, "postgres.password_file: set either postgres.password (PGCDC_POSTGRES_PASSWORD) or postgres.password_file, not both"},
		{"password file unreadable", func(c *Config) { c.Postgres.PasswordFile = "/nonexistent/pw" }, "postgres.password_file: cannot read /nonexistent/pw: no such file or directory"},
		{"slot empty", func(c *Config) { c.Postgres.Slot = "" }, `postgres.slot: invalid slot name "": use 1 to 63 lower-case letters, digits and underscores ([a-z0-9_]{1,63})`},
		{"slot upper", func(c *Config) { c.Postgres.Slot = "Slot" }, `postgres.slot: invalid slot name "Slot"`},
		{"slot too long", func(c *Config) { c.Postgres.Slot = strings.Repeat("a", 64) }, `postgres.slot: invalid slot name`},
		{"publication", func(c *Config) { c.Postgres.Publication = "1pub" }, `postgres.publication: invalid publication name "1pub": use a lower-case identifier`},
		{"publication dash", func(c *Config) { c.Postgres.Publication = "my-pub" }, `postgres.publication: invalid publication name "my-pub"`},
		{"spool dir", func(c *Config) { c.Postgres.Streaming = true; c.Postgres.SpoolDir = "" }, "postgres.spool_dir: required when postgres.streaming is true"},
		{"spool max", func(c *Config) { c.Postgres.SpoolMaxBytes = 0 }, "postgres.spool_max_bytes: must be a size > 0, e.g. 10GiB (got 0)"},
		{"status interval", func(c *Config) { c.Postgres.StatusInterval = 0 }, "postgres.status_interval: must be a duration > 0, e.g. 30s (got 0s)"},
		{"pg connect timeout", func(c *Config) { c.Postgres.ConnectTimeout = -time.Second }, "postgres.connect_timeout: must be a duration > 0, e.g. 30s (got -1s)"},
		{"refresh interval", func(c *Config) { c.Postgres.PublicationRefreshInterval = -1 }, "postgres.publication_refresh_interval: must be >= 0 (0 disables the refresh; got -1ns)"},
		{"include empty", func(c *Config) { c.Tables.Include = nil }, "tables.include: at least one schema.table pattern is required"},
		{"include no dot", func(c *Config) { c.Tables.Include = []string{"public.*", "orders"} }, `tables.include[1]: pattern "orders" must be schema.table with exactly one dot`},
		{"include two dots", func(c *Config) { c.Tables.Include = []string{"db.public.t"} }, `tables.include[0]: pattern "db.public.t" must be schema.table with exactly one dot`},
		{"include empty side", func(c *Config) { c.Tables.Include = []string{"public."} }, `tables.include[0]: pattern "public." must be schema.table`},
		{"include bad glob", func(c *Config) { c.Tables.Include = []string{"public.[a"} }, `tables.include[0]: pattern "public.[a" is not a valid glob`},
		{"include slash", func(c *Config) { c.Tables.Include = []string{"a/b.c"} }, `tables.include[0]: pattern "a/b.c" must not contain '/'`},
		{"exclude bad glob", func(c *Config) { c.Tables.Exclude = []string{"x.\\"} }, `tables.exclude[0]: pattern "x.\\" is not a valid glob`},
		{"brokers required", func(c *Config) { c.Kafka.Brokers = nil }, "kafka.brokers: required (set it in the file or PGCDC_KAFKA_BROKERS)"},
		{"broker no port", func(c *Config) { c.Kafka.Brokers = []string{"k1:9092", "k2"} }, `kafka.brokers[1]: invalid broker "k2": want host:port`},
		{"broker no host", func(c *Config) { c.Kafka.Brokers = []string{":9092"} }, `kafka.brokers[0]: invalid broker ":9092": want host:port`},
		{"broker bad port", func(c *Config) { c.Kafka.Brokers = []string{"k:99999"} }, `kafka.brokers[0]: invalid broker "k:99999": port must be a number from 1 to 65535`},
		{"topic prefix required", func(c *Config) { c.Kafka.TopicPrefix = "" }, "kafka.topic_prefix: required (set it in the file or PGCDC_KAFKA_TOPIC_PREFIX)"},
		{"topic prefix chars", func(c *Config) { c.Kafka.TopicPrefix = "a/b" }, `kafka.topic_prefix: invalid value "a/b": use letters, digits, '.', '_' and '-' only`},
		{"partitions", func(c *Config) { c.Kafka.Partitions = 0 }, "kafka.partitions: must be >= 1 (got 0)"},
		{"replication factor", func(c *Config) { c.Kafka.ReplicationFactor = -1 }, "kafka.replication_factor: must be >= 1 (got -1)"},
		{"topic config key", func(c *Config) { c.Kafka.TopicConfig = map[string]string{"": "x"} }, "kafka.topic_config: empty config name"},
		{"acks", func(c *Config) { c.Kafka.Acks = "-1" }, `kafka.acks: invalid value "-1" (allowed: all, one, none)`},
		{"compression", func(c *Config) { c.Kafka.Compression = "brotli" }, `kafka.compression: invalid value "brotli" (allowed: none, gzip, snappy, lz4, zstd)`},
		{"batch max messages", func(c *Config) { c.Kafka.BatchMaxMessages = 0 }, "kafka.batch_max_messages: must be >= 1 (got 0)"},
		{"batch max bytes", func(c *Config) { c.Kafka.BatchMaxBytes = 0 }, "kafka.batch_max_bytes: must be a size > 0, e.g. 1MiB (got 0)"},
		{"batch timeout", func(c *Config) { c.Kafka.BatchTimeout = -time.Millisecond }, "kafka.batch_timeout: must be a duration >= 0"},
		{"write timeout", func(c *Config) { c.Kafka.WriteTimeout = 0 }, "kafka.write_timeout: must be a duration > 0"},
		{"max in flight", func(c *Config) { c.Kafka.MaxInFlightBytes = 0 }, "kafka.max_in_flight_bytes: must be a size > 0, e.g. 64MiB (got 0)"},
		{"max in flight below batch", func(c *Config) { c.Kafka.MaxInFlightBytes = 512 * KiB }, "kafka.max_in_flight_bytes: must be >= kafka.batch_max_bytes (1MiB), or a full batch could never be sent (got 512KiB)"},
		{"kafka connect timeout", func(c *Config) { c.Kafka.ConnectTimeout = 0 }, "kafka.connect_timeout: must be a duration > 0"},
		{"client id", func(c *Config) { c.Kafka.ClientID = "" }, "kafka.client_id: required (set it in the file or PGCDC_KAFKA_CLIENT_ID)"},
		{"unknown types", func(c *Config) { c.Events.UnknownTypes = "skip" }, `events.unknown_types: invalid value "skip" (allowed: error, text)`},
		{"decimal", func(c *Config) { c.Events.DecimalHandling = "float" }, `events.decimal_handling: invalid value "float" (allowed: precise, double, string)`},
		{"time precision", func(c *Config) { c.Events.TimePrecision = "x" }, `events.time_precision: invalid value "x" (allowed: adaptive, adaptive_time_microseconds, connect, isostring, microseconds, nanoseconds)`},
		{"schema name adjustment", func(c *Config) { c.Events.SchemaNameAdjust = "avro2" }, `events.schema_name_adjustment: invalid value "avro2" (allowed: none, avro, avro_unicode)`},
		{"field name adjustment", func(c *Config) { c.Events.FieldNameAdjust = "x" }, `events.field_name_adjustment: invalid value "x" (allowed: none, avro, avro_unicode)`},
		{"binary", func(c *Config) { c.Events.BinaryHandling = "base32" }, `events.binary_handling: invalid value "base32" (allowed: bytes, base64, base64-url-safe, hex)`},
		{"interval", func(c *Config) { c.Events.IntervalHandling = "iso" }, `events.interval_handling: invalid value "iso" (allowed: numeric, string)`},
		{"log level", func(c *Config) { c.Log.Level = "INFO" }, `log.level: invalid value "INFO" (allowed: trace, debug, info, warn, error)`},
		{"log format", func(c *Config) { c.Log.Format = "text" }, `log.format: invalid value "text" (allowed: json, console, auto)`},
		{"metrics listen no port", func(c *Config) { c.Metrics.Listen = "localhost" }, `metrics.listen: invalid address "localhost": want [host]:port, e.g. :9187`},
		{"metrics listen bad port", func(c *Config) { c.Metrics.Listen = ":http2" }, `metrics.listen: invalid address ":http2": port must be a number from 0 to 65535`},
		{"metrics listen port range", func(c *Config) { c.Metrics.Listen = "127.0.0.1:70000" }, `metrics.listen: invalid address "127.0.0.1:70000": port must be a number from 0 to 65535`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			fes := FieldErrors(err)
			if len(fes) != 1 {
				t.Fatalf("want exactly one problem, got %d: %v", len(fes), err)
			}
			if !strings.HasPrefix(fes[0].Error(), tt.want) {
				t.Errorf("got  %q\nwant %q...", fes[0].Error(), tt.want)
			}
			if key, _, _ := strings.Cut(tt.want, ":"); fes[0].Key != key {
				t.Errorf("Key = %q, want %q", fes[0].Key, key)
			}
		})
	}
}

func TestValidateAllAtOnce(t *testing.T) {
	c := Default()
	c.Kafka.Acks = "x"
	c.Log.Format = "x"
	err := c.Validate()
	var keys []string
	for _, fe := range FieldErrors(err) {
		keys = append(keys, fe.Key)
	}
	want := "postgres.dsn kafka.brokers kafka.topic_prefix kafka.acks log.format"
	if got := strings.Join(keys, " "); got != want {
		t.Errorf("keys %q, want %q", got, want)
	}
	if n := strings.Count(err.Error(), "\n"); n != 4 {
		t.Errorf("want one line per problem: %q", err)
	}
}

func TestValidBoundaries(t *testing.T) {
	for name, mutate := range map[string]func(c *Config){
		"slot 63 chars":         func(c *Config) { c.Postgres.Slot = strings.Repeat("a", 63) },
		"slot digits":           func(c *Config) { c.Postgres.Slot = "0_slot" },
		"refresh disabled":      func(c *Config) { c.Postgres.PublicationRefreshInterval = 0 },
		"ipv6 broker":           func(c *Config) { c.Kafka.Brokers = []string{"[::1]:9092"} },
		"streaming with spool":  func(c *Config) { c.Postgres.Streaming = true },
		"in flight = batch":     func(c *Config) { c.Kafka.MaxInFlightBytes = c.Kafka.BatchMaxBytes },
		"glob classes":          func(c *Config) { c.Tables.Include = []string{"s[0-9].t_?", "*.*"} },
		"password file not set": func(c *Config) { c.Postgres.PasswordFile = "" },
		"empty topic config":    func(c *Config) { c.Kafka.TopicConfig = nil },
		"acks none":             func(c *Config) { c.Kafka.Acks = "none" },
	} {
		c := valid()
		mutate(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMatches(t *testing.T) {
	tests := []struct {
		name             string
		include, exclude []string
		schema, table    string
		want             bool
	}{
		{"default public", []string{"public.*"}, nil, "public", "orders", true},
		{"default other schema", []string{"public.*"}, nil, "sales", "orders", false},
		{"exact", []string{"sales.orders"}, nil, "sales", "orders", true},
		{"exact other table", []string{"sales.orders"}, nil, "sales", "order", false},
		{"any schema", []string{"*.orders"}, nil, "x", "orders", true},
		{"star does not cross dot", []string{"*"}, nil, "public", "t", false},
		{"question mark", []string{"public.t?"}, nil, "public", "t1", true},
		{"question mark one char", []string{"public.t?"}, nil, "public", "t12", false},
		{"class", []string{"s[0-9].t"}, nil, "s7", "t", true},
		{"negated class", []string{"s[^0-9].t"}, nil, "s7", "t", false},
		{"case sensitive", []string{"public.Orders"}, nil, "public", "orders", false},
		{"excluded", []string{"public.*"}, []string{"public.tmp_*"}, "public", "tmp_x", false},
		{"not excluded", []string{"public.*"}, []string{"public.tmp_*"}, "public", "orders", true},
		{"exclude wins over exact include", []string{"public.t"}, []string{"*.*"}, "public", "t", false},
		{"second include", []string{"a.*", "b.*"}, nil, "b", "x", true},
		{"no include", nil, nil, "public", "t", false},
		{"slash in name matched by star", []string{"public.*"}, nil, "public", "a/b", true},
		{"slash in name matched by ?", []string{"public.a?b"}, nil, "public", "a/b", true},
		{"dot in table name matched by star", []string{"public.*"}, nil, "public", "a.b", true},
		{"bad pattern matches nothing", []string{"public.[", "public.x"}, nil, "public", "x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := TablesConfig{Include: tt.include, Exclude: tt.exclude}
			if got := tc.Matches(tt.schema, tt.table); got != tt.want {
				t.Errorf("Matches(%q, %q) = %v, want %v", tt.schema, tt.table, got, tt.want)
			}
		})
	}
}

func TestByteSize(t *testing.T) {
	good := []struct {
		in   string
		want ByteSize
	}{
		{"0", 0}, {"1048576", MiB}, {"64MiB", 64 * MiB}, {"64MB", 64_000_000}, {"10GiB", 10 * GiB},
		{"1KB", 1000}, {"1KiB", 1024}, {"2TiB", 2 * TiB}, {"3TB", 3 * TB}, {"5B", 5}, {"7b", 7},
		{"64mib", 64 * MiB}, {" 64 MiB ", 64 * MiB}, {"1.5GiB", 3 * GiB / 2}, {"0.5KB", 500},
	}
	for _, g := range good {
		got, err := ParseByteSize(g.in)
		if err != nil || got != g.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", g.in, got, err, g.want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "-1KiB", "1XB", "1 M", "1e3", "1..5MB", "9999999999TiB", "99999999999999999999"} {
		if got, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want error", in, got)
		}
	}
	for in, want := range map[ByteSize]string{0: "0", 1500: "1500", 1024: "1KiB", 64 * MiB: "64MiB", 10 * GiB: "10GiB", 2 * TiB: "2TiB", MiB + 1: "1048577"} {
		if got := in.String(); got != want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(in), got, want)
		}
		if back, err := ParseByteSize(in.String()); err != nil || back != in {
			t.Errorf("round trip %d: %d %v", int64(in), back, err)
		}
	}
}

func TestUnmatchedIncludes(t *testing.T) {
	tests := []struct {
		name     string
		include  []string
		captured []string
		want     []string
	}{
		{"all found", []string{"public.a", "sales.*"}, []string{"public.a", "sales.b"}, nil},
		{"missing name", []string{"public.a", "public.b"}, []string{"public.a"}, []string{"public.b"}},
		{"wildcards may match nothing", []string{"public.*", "s?.t", "x.[ab]", `x.a\*`}, nil, nil},
		{"case matters", []string{"public.Orders"}, []string{"public.orders"}, []string{"public.Orders"}},
		{"nothing captured", []string{"public.a"}, nil, []string{"public.a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := TablesConfig{Include: tt.include}.UnmatchedIncludes(tt.captured)
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("UnmatchedIncludes = %q, want %q", got, tt.want)
			}
		})
	}
}

// Row filters and column lists are keyed by one captured table's exact name and are not empty; YAML
// and the environment both set them.
func TestPublicationFiltersConfig(t *testing.T) {
	yaml := `
postgres: {dsn: "postgres://u@h/db"}
kafka: {brokers: [k:9092], topic_prefix: app}
tables:
  include: [public.*]
  row_filters:
    public.orders: "region = 'eu'"
  columns:
    public.customers: [id, name]
`
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Tables.RowFilters["public.orders"] != "region = 'eu'" || strings.Join(cfg.Tables.Columns["public.customers"], ",") != "id,name" {
		t.Fatalf("row_filters %v, columns %v", cfg.Tables.RowFilters, cfg.Tables.Columns)
	}
	cfg, err = Load(path, []string{"PGCDC_TABLES_COLUMNS=public.a=id,x,public.b=id"})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Tables.Columns; strings.Join(got["public.a"], ",") != "id,x" || strings.Join(got["public.b"], ",") != "id" {
		t.Fatalf("columns from the environment: %v", got)
	}
	for _, c := range []struct {
		env, want string
	}{
		{"PGCDC_TABLES_ROW_FILTERS=public.*=x > 1", "must name one table"},
		{"PGCDC_TABLES_ROW_FILTERS=orders=x > 1", "exactly one dot"},
		{"PGCDC_TABLES_ROW_FILTERS=other.t=x > 1", "is not captured"},
		{"PGCDC_TABLES_ROW_FILTERS=public.t= ", "the condition is empty"},
	} {
		_, err := Load(path, []string{c.env})
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.env, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.env, err, c.want)
		}
	}
}
